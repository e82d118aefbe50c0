"""Annotate: label new samples into the fine-tune queue; manage the queue."""

import hashlib

import numpy as np
import streamlit as st

from pages._common import LANG_NAMES, current_user, engine_or_stop, md, routed
from xmr_core.search.annotate import (
    create_concept,
    delete_annotation,
    queue_zip,
    relabel_annotation,
    save_annotation,
    suggest,
)
from xmr_core.store.users import may_edit

routed(__file__)
st.title("Annotate samples")
eng = engine_or_stop()
fmt = lambda c: " / ".join(eng.lexicon.get(c).word(lg) for lg in LANG_NAMES)  # noqa: E731

draw_tab, upload_tab = st.tabs(["✏️ Draw", "📤 Upload"])
sample = None
with draw_tab:
    from streamlit_drawable_canvas import st_canvas

    canvas = st_canvas(stroke_width=10, stroke_color="#000000", background_color="", height=200, width=600,
                       drawing_mode="freedraw", return_image_data=True, key="annotate_canvas")
    if canvas.image_data is not None and canvas.image_data[..., 3].max() > 0:
        sample = canvas.image_data
with upload_tab:
    up = st.file_uploader("A sample image", type=["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"],
                          key="annotate_upload")
    if up is not None:
        sample = up.getvalue()

if sample is not None:
    try:
        top = suggest(eng, sample, exemplars=eng.exemplars_of(current_user()))
    except ValueError as exc:
        st.error(str(exc))
        top = []
    if top:
        # every widget about this sample is keyed by its content and its suggestions: a new sample (or
        # new suggestions for it, as when the user's own labels change them) starts from its own first
        # suggestion, never from earlier choices
        options = [c for c, _, _ in top]
        raw = sample.tobytes() if isinstance(sample, np.ndarray) else sample
        tag = hashlib.sha256(raw + repr([(c, lg) for c, lg, _ in top]).encode()).hexdigest()[:12]
        st.markdown("The model suggests:")
        choice = st.radio("Concept", options, key=f"annotate_choice_{tag}",
                          format_func=lambda c: f"{fmt(c)} ({dict((x, s) for x, _, s in top)[c]:.2f})")
        other = st.selectbox("...or another concept (search by any of its words)", [""] + eng.lexicon.ids(),
                             format_func=lambda c: fmt(c) if c else "", key=f"annotate_other_{tag}")
        guess = top[0][1]  # the script of the word the image matches best
        lang = st.radio(f"Script of the sample (looks like {LANG_NAMES[guess]})", list(LANG_NAMES),
                        format_func=LANG_NAMES.get, horizontal=True, index=list(LANG_NAMES).index(guess),
                        key=f"annotate_lang_{tag}")
        if st.button(f"Save to the fine-tune queue as {current_user()}", type="primary", key="annotate_save"):
            try:
                save_annotation(eng, sample, other or choice, lang, current_user())
                st.success(f"Saved as {fmt(other or choice)} ({LANG_NAMES[lang]}).")
            except ValueError as exc:
                st.error(str(exc))

with st.expander("Create a new concept"):
    c1, c2, c3 = st.columns(3)
    zh = c1.text_input("Chinese (simplified)", key="annotate_new_zh")
    en = c2.text_input("English", key="annotate_new_en")
    es = c3.text_input("Spanish", key="annotate_new_es")
    if st.button("Create concept", key="annotate_new_btn"):
        try:
            c = create_concept(eng, zh, en, es)
            st.success(f"Created {c.concept_id}: {c.zh} / {c.en} / {c.es}")
        except ValueError as exc:
            st.error(str(exc))

st.subheader("Fine-tune queue")
queue = eng.store.list_annotations()
ids = eng.lexicon.ids()
st.caption(f"{len(queue)} samples; you ({current_user()}) may relabel or delete "
           + ("any of them (reviewer)." if queue and all(may_edit(eng.store, current_user(), a) for a in queue)
              else "your own (the project's reviewer may change any: `xmr user NAME --role reviewer`)."))
for a in queue[:60]:
    cols = st.columns([1, 3, 3, 1])
    cols[0].image(str(eng.store.root / a["path"]), width=120)
    cols[1].write(f"{md(fmt(a['concept_id']))} · {LANG_NAMES[a['lang']]}"
                  + (f" · by {md(a['author'])}" if a["author"] else ""))
    if not may_edit(eng.store, current_user(), a):
        cols[2].caption(f"{a['author'] or 'nobody'}'s sample")
        continue
    with cols[2].popover("Relabel"), st.form(f"annotate_relabel_{a['id']}", border=False):
        # a form: the new label is applied once, when its button is pressed, not on every rerun
        concept = st.selectbox("Concept", ids, index=ids.index(a["concept_id"]) if a["concept_id"] in ids else 0,
                               format_func=fmt, key=f"annotate_relabel_concept_{a['id']}")
        script = st.radio("Script", list(LANG_NAMES), index=list(LANG_NAMES).index(a["lang"]),
                          format_func=LANG_NAMES.get, horizontal=True, key=f"annotate_relabel_lang_{a['id']}")
        if st.form_submit_button("Apply"):
            relabel_annotation(eng, current_user(), a["id"], concept, script)
            st.rerun()
    if cols[3].button("Delete", key=f"annotate_delete_{a['id']}"):
        delete_annotation(eng, current_user(), a["id"])
        st.rerun()
if queue:
    st.download_button("Download the queue (images and manifest.csv, zip)", queue_zip(eng), "xmr-queue.zip",
                       mime="application/zip", key="annotate_export", on_click="ignore")
