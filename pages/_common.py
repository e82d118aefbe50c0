"""What every page shares: the one engine (cached, shared by all sessions) and result rendering."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from xmr_core.service import load_engine, model_available

LANG_NAMES = {"zh": "Chinese", "en": "English", "es": "Spanish"}


@st.cache_resource(show_spinner="Loading the model, the store and the index...")
def get_engine():
    """The engine for the data folder (built once per server; a first start adds the demo collection)."""
    return load_engine()


def routed(page_file: str) -> None:
    """Send a page that runs without the router (a deep link before any session ran app.py) to
    app.py, which routes on to that page (a page passes its `__file__`) with the app's layout and sidebar."""
    if not st.session_state.get("xmr_routed"):
        st.session_state["xmr_goto"] = f"pages/{Path(page_file).name}"
        st.switch_page("app.py")


def engine_or_stop():
    if not model_available():
        st.warning("No model is installed yet: the bundled default model (assets/models/default) is missing. "
                   "Train one with `xmr train --config configs/default.json --out runs/default`.")
        st.stop()
    return get_engine()


def show_hits(hits, by_script: bool, columns: int = 5) -> None:
    """A grid of results: thumbnail, script, the concept's three words, score."""
    if not hits:
        st.info("No results in the chosen scripts.")
        return
    groups = [(LANG_NAMES[lg], [h for h in hits if h.lang == lg]) for lg in LANG_NAMES] if by_script else [("", hits)]
    for title, group in groups:
        if by_script:
            st.subheader(f"{title} ({len(group)})")
            if not group:
                continue
        cols = st.columns(columns)
        for i, h in enumerate(group):
            with cols[i % columns]:
                st.image(str(h.path), width="stretch")
                words = " · ".join(h.words.values()) if h.words else "unlabelled"
                st.caption(f"**{LANG_NAMES.get(h.lang or '', '?')}** · {words} · score {h.score:.3f}")
