"""XMR Streamlit app: a thin router over pages/ (no torch, FAISS or SQL here)."""

import streamlit as st

st.set_page_config(page_title="XMR: cross-script handwriting search", page_icon="✍️", layout="wide")

pages = [st.Page("pages/home.py", title="Home", icon="🏠", default=True)]
st.navigation(pages).run()
