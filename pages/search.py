"""Search: draw, upload or type a word; results in all three scripts; the user's marks and history."""

import time
from collections import Counter

import streamlit as st

from pages._common import LANG_NAMES, current_user, demo_progress, drawing_image, engine_or_stop, md, routed, show_hits
from xmr_core.data.export import manifest_zip, rows_csv
from xmr_core.data.preprocess import open_image, to_preview
from xmr_core.search.annotate import query_script, save_annotation
from xmr_core.search.demo import EXAMPLES
from xmr_core.store import users

CANVAS_W, CANVAS_H = 640, 220
# The canvas is drawn at CANVAS_W pixels and zoomed down to the column it is in (a narrow window, a
# phone): the drawing keeps its pixels; the canvas maps the pointer through the zoom. Media queries for
# browsers without CSS typed arithmetic.
FIT_CANVAS = f"""<style>
div:has(> div[class*="st-key-search_canvas_"]) {{ container-type: inline-size; }}
div[class*="st-key-search_canvas_"] > * {{ zoom: min(1, calc(100cqw / {CANVAS_W + 2}px)); }}
@supports not (zoom: calc(1px / 1px)) {{
  @media (max-width: 1000px) {{ div[class*="st-key-search_canvas_"] > * {{ zoom: 0.68; }} }}
  @media (max-width: 700px) {{ div[class*="st-key-search_canvas_"] > * {{ zoom: 0.55; }} }}
}}
</style>"""
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "heic"]

routed(__file__)
st.title("Search handwriting")
eng = engine_or_stop()
with st.sidebar:
    langs = st.multiselect("Target scripts", list(LANG_NAMES), default=list(LANG_NAMES),
                           format_func=LANG_NAMES.get, key="search_langs")
    by_script = st.toggle("Group by script", value=True, key="search_group")
    k = st.slider("Results per script" if by_script else "Results", 1, 50, 15, key="search_k")
    show_view = st.toggle("Show what the model sees", value=False, key="search_view")
    demo_progress(eng.store)  # beside the page, not above it: the canvas does not move when the bar goes

draw_tab, upload_tab, type_tab = st.tabs(["✏️ Draw", "📤 Upload", "⌨️ Type"])
query, problem = None, None
with draw_tab:
    from streamlit_drawable_canvas import st_canvas

    width = st.slider("Pen width", 3, 30, 10, key="search_pen")
    n = st.session_state.setdefault("search_canvas_n", 0)  # a new key is a fresh, empty canvas
    st.html(FIT_CANVAS)
    canvas = st_canvas(stroke_width=width, stroke_color="#000000", background_color="", height=CANVAS_H,
                       width=CANVAS_W, drawing_mode="freedraw", return_image_data=True, key=f"search_canvas_{n}",
                       initial_drawing=st.session_state.get("search_canvas_init"))
    strokes = (canvas.json_data or {}).get("objects") or []
    b1, b2, b3, _ = st.columns([1, 1, 1, 2])
    if b1.button("Search drawing", key="search_draw_btn", type="primary"):
        # a canvas remounted by Undo shows its strokes but sends no image until the next stroke: drawn here
        image = canvas.image_data if canvas.image_data is not None and canvas.image_data[..., 3].any() else (
            drawing_image(strokes, CANVAS_W, CANVAS_H) if strokes else None)
        if image is None:
            problem = "The canvas is empty: draw a word first."
        else:
            query = {"image": image}
    if b2.button("Undo the last stroke", key="search_undo", icon="↩️", disabled=not strokes):
        st.session_state["search_canvas_init"] = {**canvas.json_data, "objects": strokes[:-1]}
        st.session_state["search_canvas_n"] = n + 1
        st.rerun()
    if b3.button("Clear the canvas", key="search_clear", icon="🧹", disabled=not strokes):
        st.session_state["search_canvas_init"] = None
        st.session_state["search_canvas_n"] = n + 1
        st.rerun()
with upload_tab:
    up = st.file_uploader("An image of one handwritten word", type=UPLOAD_TYPES, key="search_upload")
    if up is not None:
        try:
            img = open_image(up.getvalue())
            img.thumbnail((480, 160))
            st.image(img, caption=f"{up.name} ({img.width} x {img.height} shown)")
            if st.button("Search upload", key="search_up_btn", type="primary"):
                query = {"image": up.getvalue()}
        except ValueError as exc:
            st.error(f"{up.name} cannot be searched: {exc}.")
with type_tab:
    with st.form("search_text_form", border=False):  # Enter in the box submits the form
        text = st.text_input("A word in any language", key="search_text", placeholder=", ".join(EXAMPLES) + " ...")
        if st.form_submit_button("Search text", type="primary", key="search_text_btn"):
            query = {"text": text}


def run(q: dict, pages: int, feedback: dict | None = None, new: bool = False) -> None:
    """Search as the sidebar's user and keep the answer (the query, its key and the marks it was ranked
    with, for "Show more" and re-ranking) in the session; a `new` search goes into the user's history, and
    without `feedback` (None; {} is none) the user's standing marks re-rank it. A bad query is reported
    above the results it leaves in place."""
    try:
        hits, info, sid, key = users.search_as(eng, current_user(), q, feedback=feedback, record=new,
                                               k=min(1000, k * pages), languages=langs or list(LANG_NAMES),
                                               per_script=by_script)
    except ValueError as exc:
        st.session_state["search_problem"] = str(exc)
        return
    st.session_state.pop("search_problem", None)
    st.session_state["search_last"] = (hits, info)
    st.session_state["search_query"] = (q, pages)
    st.session_state["search_key"] = key
    if sid is not None:
        st.session_state["search_id"] = sid
    st.session_state["search_marks"] = dict(info.marks)  # what it was ranked with: given, or the standing ones


def queue_marked(hits, info, marks: dict) -> None:
    """Offer each hit marked right to the fine-tune queue, labelled with its concept (or the typed lexicon
    word's) and its script; the user's click is the confirmation."""
    typed = eng.lexicon.lookup(info.text) if info.kind == "text" else []
    queued = st.session_state.setdefault("search_queued", set())
    for h in hits:
        cid = h.concept_id or (typed[0].concept_id if typed else None)
        if not marks.get(h.item_id) or cid is None or h.lang is None or h.missing or h.item_id in queued:
            continue
        c = eng.lexicon.get(cid)
        if st.button(f"Add item {h.item_id} to the fine-tune queue as {c.en} / {c.zh} / {c.es} "
                     f"({LANG_NAMES.get(h.lang)})", key=f"search_queue_{h.item_id}", icon="➕"):
            save_annotation(eng, str(h.path), cid, h.lang, author=current_user())
            queued.add(h.item_id)
            st.toast(f"Item {h.item_id} is in the fine-tune queue as {c.en} ({LANG_NAMES.get(h.lang)})")
            st.rerun()
    right = next((h for h in hits if marks.get(h.item_id) and h.concept_id), None)
    image = st.session_state.get("search_query", ({}, 1))[0].get("image")
    key = ("query", st.session_state.get("search_id"))  # this search's query: another drawing is another search
    if info.kind == "image" and right is not None and image is not None and key not in queued:
        # the query is a sample of the user's own hand, of the marked hit's concept
        c, lang = eng.lexicon.get(right.concept_id), query_script(eng, image, right.concept_id)
        if st.button(f"Add your query to the fine-tune queue as {c.en} / {c.zh} / {c.es} ({LANG_NAMES[lang]})",
                     key="search_queue_query", icon="➕",
                     help="Your own writing teaches a fine-tune your hand better than the collection's items."):
            save_annotation(eng, image, right.concept_id, lang, author=current_user())
            queued.add(key)
            st.toast(f"Your query is in the fine-tune queue as {c.en} ({LANG_NAMES[lang]})")
            st.rerun()


if query is not None:
    run(query, 1, new=True)  # a new query: the user's standing marks for it, if any
elif problem:
    st.session_state["search_problem"] = problem
if st.session_state.get("search_problem"):
    st.error(st.session_state["search_problem"])

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
                version = abs(hash((info.text, str(info.terms))))
                edited = {lg: st.text_input(LANG_NAMES[lg], ", ".join(info.terms.get(lg, [])), key=f"search_terms_{lg}_{version}")
                          for lg in LANG_NAMES}
                if st.form_submit_button("Search these terms", key="search_terms_btn"):
                    terms = {lg: [w.strip() for w in v.split(",") if w.strip()] for lg, v in edited.items()}
                    run({"text": info.text, "terms": {lg: v for lg, v in terms.items() if v}}, 1)
                    st.rerun()
    if info.weak:
        st.warning("Nothing in the collection matches this well. The nearest items:")
    if info.kind == "image":
        cols = st.columns([3, 1] if show_view else [1])
        with cols[0]:
            st.markdown(("Nearest lexicon words" if info.terms else "Recognised as") + ": " + " · ".join(
                f"**{LANG_NAMES[lg]}** " + ", ".join(f"{md(w)} ({s:.2f})" for _, w, s in info.recognized[lg][:3])
                for lg in info.recognized))
            if info.exemplars:
                st.caption("Looks like samples you labelled: " + ", ".join(
                    f"{md(eng.lexicon.get(c).word(lg))} ({LANG_NAMES[lg]}, {s:.2f})" for c, lg, s in info.exemplars[:3]))
        if show_view and info.preview is not None:
            with cols[1]:
                st.image(to_preview(info.preview[None]), caption="what the model sees")
    marks = st.session_state.get("search_marks", {})
    if marks:
        n_right, n_wrong = info.feedback  # what the engine re-ranked with
        c1, c2 = st.columns([4, 1])
        c1.info(f"Re-ranked by your marks: {n_right} right, {n_wrong} wrong (hits marked wrong are "
                "left out; the search moved towards those marked right).")
        if c2.button("Clear marks", key="search_marks_clear"):
            users.clear_marks(eng.store, current_user(), st.session_state["search_key"])
            run(st.session_state["search_query"][0], st.session_state["search_query"][1], {})  # no marks
            st.rerun()
        queue_marked(hits, info, marks)
    clicked = show_hits(hits, by_script, details=eng, marks=marks)
    if clicked is not None:
        last, pages = st.session_state["search_query"]
        hit = next(h for h in hits if h.item_id == clicked[0])
        users.mark(eng.store, current_user(), st.session_state.get("search_id"), clicked[0], clicked[1],
                   users.query_concept(info, eng.lexicon), hit.lang, st.session_state["search_key"], eng.look(info))
        run(last, pages, {**marks, clicked[0]: clicked[1]})
        st.rerun()
    if hits:
        rows = [{"rank": n + 1, "item_id": h.item_id, "score": round(h.score, 4), "script": h.lang or "",
                 "concept_id": h.concept_id or "", **{lg: (h.words or {}).get(lg, "") for lg in LANG_NAMES},
                 "collection": h.collection, "source": h.source} for n, h in enumerate(hits)]
        d1, d2, _ = st.columns([1, 1, 2])
        d1.download_button("Download the results (CSV)", rows_csv(rows), "xmr-results.csv", mime="text/csv",
                           key="search_csv", on_click="ignore")
        d2.download_button("Download the images (zip)", manifest_zip([(h.path, r) for h, r in zip(hits, rows)]),
                           "xmr-results.zip", mime="application/zip", key="search_zip", on_click="ignore")
    last, pages = st.session_state.get("search_query", (None, 1))
    shown = Counter(h.lang for h in hits) if by_script else {"": len(hits)}
    if last is not None and max(shown.values(), default=0) >= k * pages and k * (pages + 1) <= 1000:
        if st.button(f"Show {k} more" + (" per script" if by_script else ""), key="search_more"):
            run(last, pages + 1, st.session_state.get("search_marks"))
            st.rerun()


with st.expander(f"Your searches ({current_user()})"):
    past = users.history(eng.store, current_user(), 10)
    if not past:
        st.caption("None yet: the searches you make under this name are listed here.")
    for h in past:
        c1, c2, c3 = st.columns([2, 5, 1])
        c1.write(time.strftime("%Y-%m-%d %H:%M", time.localtime(h["created"])))
        top = ", ".join(f"{r['en'] or r['item_id']} ({LANG_NAMES.get(r['lang'], '?')})" for r in h["results"][:3])
        marked = sum(h["marks"].values()), len(h["marks"]) - sum(h["marks"].values())
        c2.write(f"{'drawing or upload' if h['kind'] == 'image' else 'typed'} **{md(h['query'].get('shown', ''))}** "
                 f"→ {md(top) or 'no results'}" + (f" · marked {marked[0]} right, {marked[1]} wrong" if h["marks"] else ""))
        if c3.button("Run again", key=f"search_again_{h['id']}"):
            run(users.saved_query(eng.store, current_user(), h["id"])[0], 1, new=True)  # with today's options
            st.rerun()
