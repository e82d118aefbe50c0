"""Search: draw, upload or type a word; results in all three scripts."""

import streamlit as st

from pages._common import LANG_NAMES, engine_or_stop, md, routed, show_hits
from xmr_core.preprocess import to_preview

routed(__file__)
st.title("Search handwriting")
eng = engine_or_stop()

with st.sidebar:
    langs = st.multiselect("Target scripts", list(LANG_NAMES), default=list(LANG_NAMES),
                           format_func=LANG_NAMES.get, key="search_langs")
    k = st.slider("Results", 1, 50, 15, key="search_k")
    by_script = st.toggle("Group by script", value=True, key="search_group")
    show_view = st.toggle("Show what the model sees", value=False, key="search_view")

draw_tab, upload_tab, type_tab = st.tabs(["✏️ Draw", "📤 Upload", "⌨️ Type"])
query = None
with draw_tab:
    from streamlit_drawable_canvas import st_canvas

    width = st.slider("Pen width", 3, 30, 10, key="search_pen")
    canvas = st_canvas(stroke_width=width, stroke_color="#000000", background_color="", height=220, width=640,
                       drawing_mode="freedraw", return_image_data=True, key="search_canvas")
    if st.button("Search drawing", key="search_draw_btn", type="primary"):
        if canvas.image_data is None or canvas.image_data[..., 3].max() == 0:
            st.error("The canvas is empty: draw a word first.")
        else:
            query = {"image": canvas.image_data}
with upload_tab:
    up = st.file_uploader("An image of one handwritten word", type=["png", "jpg", "jpeg", "webp", "bmp", "tif",
                                                                    "tiff", "heic"], key="search_upload")
    if up is not None and st.button("Search upload", key="search_up_btn", type="primary"):
        query = {"image": up.getvalue()}
with type_tab:
    text = st.text_input("A word in any language", key="search_text", placeholder="gato, 猫, cat ...")
    if st.button("Search text", key="search_text_btn", type="primary"):
        query = {"text": text}

if query is not None:
    try:
        hits, info = eng.search(k=k, languages=langs or list(LANG_NAMES), **query)
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
    st.session_state["search_last"] = (hits, info)

if "search_last" in st.session_state:
    hits, info = st.session_state["search_last"]
    if info.kind == "text":
        st.markdown(f"Query **{md(info.text)}** · detected language: **{LANG_NAMES.get(info.detected_lang, 'other')}**")
    elif info.terms:
        st.markdown(f"Read as **{md(info.text)}** (not a lexicon word)")
    if info.terms:
        st.markdown("Searching for " + " · ".join(f"**{md(w)}**" for lg in LANG_NAMES for w in info.terms.get(lg, [])[:1]))
        with st.expander("Edit the terms searched"):
            with st.form("search_terms_form"):
                edited = {lg: st.text_input(LANG_NAMES[lg], ", ".join(info.terms.get(lg, [])), key=f"search_terms_{lg}_{abs(hash((info.text, str(info.terms))))}")
                          for lg in LANG_NAMES}
                if st.form_submit_button("Search these terms"):
                    terms = {lg: [w.strip() for w in v.split(",") if w.strip()] for lg, v in edited.items()}
                    try:
                        hits, info = eng.search(text=info.text, terms={lg: v for lg, v in terms.items() if v}, k=k,
                                                languages=langs or list(LANG_NAMES))
                    except ValueError as exc:
                        st.error(str(exc))
                        st.stop()
                    st.session_state["search_last"] = (hits, info)
                    st.rerun()
    if info.weak:
        st.warning("Nothing in the collection matches this well. The nearest items:")
    if info.kind == "image":
        cols = st.columns([3, 1] if show_view else [1])
        with cols[0]:
            st.markdown(("Nearest lexicon words" if info.terms else "Recognised as") + ": " + " · ".join(
                f"**{LANG_NAMES[lg]}** " + ", ".join(f"{md(w)} ({s:.2f})" for _, w, s in info.recognized[lg][:3])
                for lg in info.recognized))
        if show_view and info.preview is not None:
            with cols[1]:
                st.image(to_preview(info.preview[None]), caption="what the model sees")
    show_hits(hits, by_script)
    pages = [h for h in hits if h.page_sha256]
    if pages:
        with st.expander("Where on the page"):
            for h in pages[:5]:
                st.image(eng.page_with_box(h), caption=f"item {h.item_id}")
