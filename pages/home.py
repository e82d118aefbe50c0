"""Home: what XMR is, and whether its model is ready."""

import streamlit as st

from xmr_core.lexicon import load_lexicon

st.title("XMR: find handwritten words across scripts")
st.write("Draw, upload or type a word in Chinese, English or Spanish and find handwriting of the same "
         "meaning in all three scripts.")
lex = load_lexicon()
st.metric("Concepts in the lexicon", len(lex))
st.info("The search model is not bundled yet: search, explore, annotate and fine-tune pages arrive with it.")
