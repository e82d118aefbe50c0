"""XMR Streamlit app: a thin router over pages/ (no torch, FAISS or SQL here).

Until some session has run this router, Streamlit serves a deep link (/annotate) by running the page
file alone, its legacy pages/-folder mode. Pages then come back here (pages/_common.routed) and are
sent on to where they were asked for; the sidebar links are drawn here, never the folder's list
(client.showSidebarNavigation = false)."""

import streamlit as st

st.set_page_config(page_title="XMR: cross-script handwriting search", page_icon="✍️", layout="wide")

pages = [
    st.Page("pages/search.py", title="Search", icon="🔎", default=True),
    st.Page("pages/explore.py", title="Explore", icon="🗺️"),
    st.Page("pages/annotate.py", title="Annotate", icon="🏷️"),
    st.Page("pages/finetune.py", title="Fine-tune", icon="🛠️"),
    st.Page("pages/models.py", title="Models", icon="🧠"),
    st.Page("pages/home.py", title="About", icon="ℹ️"),
]
page = st.navigation(pages, position="hidden")
st.session_state["xmr_routed"] = True
goto = st.session_state.pop("xmr_goto", None)
if goto:
    st.switch_page(goto)
with st.sidebar:
    for p in pages:
        st.page_link(p)
    st.divider()
page.run()
