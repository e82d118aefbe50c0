"""XMR Streamlit app: a thin router over pages/ (no torch, FAISS or SQL here)."""

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
st.navigation(pages).run()
