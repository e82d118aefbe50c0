"""What every page shares: the one engine (cached, shared by all sessions) and result rendering."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from xmr_core.service import load_engine, model_available

LANG_NAMES = {"zh": "Chinese", "en": "English", "es": "Spanish"}
ZWSP = "\u200b"


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
    """The engine, or a message saying why there is none and what to do (never a traceback)."""
    if not model_available():
        st.warning("No model is installed yet: the bundled models (assets/models/reader, assets/models/edge) are missing. "
                   "Train one with `xmr train --config configs/default.json --out runs/default`.")
        st.stop()
    try:
        return get_engine()
    except Exception as exc:  # a bad model or a damaged store must not take every page down
        st.error(f"The search engine could not start: {type(exc).__name__}: {exc}")
        st.info("Open **Models** in the sidebar to roll back or activate another model; "
                "`xmr doctor` checks the data folder.")
        st.stop()


def md(text: str) -> str:
    """User text made safe to show inside markdown: shown as typed, never as links, images or formatting.
    Markdown syntax is backslash-escaped; bare URLs and e-mail addresses, which GitHub-flavoured markdown
    links after parsing, are broken with an invisible zero-width space."""
    out = "".join("\\" + ch if ch in "\\`*_{}[]<>()#+-.!|~$:" else ch for ch in str(text))
    for mark, broken in (("//", "/" + ZWSP + "/"), ("www", "w" + ZWSP + "ww"), ("@", ZWSP + "@")):
        out = out.replace(mark, broken)
    return out


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
                if h.missing:
                    st.warning(f"Image file of item {h.item_id} is missing (run `xmr doctor`).")
                else:
                    st.image(str(h.path), width="stretch")
                words = " · ".join(md(w) for w in h.words.values()) if h.words else "unlabelled"
                st.caption(f"**{LANG_NAMES.get(h.lang or '', '?')}** · {words} · score {h.score:.3f}")
