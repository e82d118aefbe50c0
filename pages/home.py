"""About: what XMR is and what it holds."""

import streamlit as st

from pages._common import routed
from xmr_core.data.lexicon import load_lexicon

routed(__file__)
st.title("XMR: find handwritten words across scripts")
st.write("Draw, upload or type a word in Chinese, English or Spanish and find handwriting of the same "
         "meaning in all three scripts, offline, on an ordinary CPU.")
st.metric("Concepts in the lexicon", len(load_lexicon()))
