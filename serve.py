"""The app's web entry: `streamlit run serve.py` serves app.py through Streamlit's ASGI App with one
middleware (pages/_backend_base.py) that spares a deep link such as /annotate two 404s in the browser.
`streamlit run app.py` serves the same app without it."""

import streamlit as st
from starlette.middleware import Middleware
from streamlit import config

from pages._backend_base import BackendBase

app = st.App("app.py", middleware=[Middleware(BackendBase, base_url_path=config.get_option("server.baseUrlPath"))])
