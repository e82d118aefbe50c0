"""Explore: the embedding space of a collection with the lexicon anchors; R/D ratios; accuracy matrix."""

import streamlit as st

from pages._common import engine_or_stop, routed
from pages._map_hover import hover_images
from xmr_core.evaluate.plots import accuracy_matrix_figure, embedding_figure, own_anchor_share

SAMPLE = 300  # images t-SNE maps by default (about 15 s on one core; all 900 of the demo take about 30)

routed(__file__)
st.title("Explore the embedding space")
eng = engine_or_stop()
collections = [c["name"] for c in eng.store.list_collections()]
if not collections:
    st.info("No collections yet: add images on the command line (`xmr add`) or build the demo (`xmr demo`).")
    st.stop()
c1, c2, c3 = st.columns(3)
collection = c1.selectbox("Collection", collections, key="explore_collection")
method = c2.radio("Projection", ["tsne", "pca"], horizontal=True, key="explore_method",
                  format_func={"tsne": f"t-SNE ({SAMPLE} images)", "pca": "PCA (all, fast)"}.get,
                  help="t-SNE keeps a concept's scripts and anchors together (measured below the map); "
                       "PCA of hundreds of concepts in two dimensions cannot.")
color = c3.radio("Colour by", ["lang", "concept", "style"], horizontal=True, key="explore_color",
                 format_func={"lang": "script", "concept": "concept", "style": "style (font or hand)"}.get)
pick = st.multiselect("Concepts to show and colour (empty: all; t-SNE maps a sample of them)", eng.lexicon.ids(),
                      key="explore_concepts",
                      format_func=lambda c: " / ".join(eng.lexicon.get(c).word(lg) for lg in ("zh", "en", "es")))


@st.cache_data(show_spinner=False, max_entries=16)
def _frame(model_id: str, collection: str, concepts: tuple, method: str, n_items: int):
    """The map of a collection state (its model, items and choices): computed once, then cached."""
    limit = SAMPLE if method == "tsne" and not concepts else 1500
    return eng.explore(collection, list(concepts) or None, method, max_items=limit)


@st.cache_data(show_spinner=False, max_entries=16)
def _thumbnails(model_id: str, collection: str, concepts: tuple, method: str, n_items: int) -> dict[int, str]:
    """The map's images as small data URIs for hover, once per collection state."""
    df, _ = _frame(model_id, collection, concepts, method, n_items)
    return eng.thumbnails(df.loc[df.kind == "image", "item_id"].tolist())


key = (eng.model_id, collection, tuple(pick), method, eng.store.count_items(collection))
try:
    if st.session_state.get("explore_done") == key:
        df, rd = _frame(*key)
    else:  # a new map: say what is being computed while it is
        with st.status(f"Projecting {'a sample of ' + str(SAMPLE) if method == 'tsne' and not pick else 'the'} "
                       f"images and their anchors by {'t-SNE (about 15 s)' if method == 'tsne' else 'PCA'}...") as box:
            df, rd = _frame(*key)
            box.update(label=f"Mapped {int((df.kind == 'image').sum())} images and {int((df.kind == 'anchor').sum())} "
                             "anchors", state="complete")
        st.session_state["explore_done"] = key
except ValueError as exc:
    st.warning(str(exc))
    st.stop()
if color == "concept":
    shown = list(pick) or sorted(set(df[df.kind == "image"].concept) - {"unlabelled"})[:10]
    st.caption(f"Coloured: {len(shown[:20])} concepts" + ("" if pick else " (choose concepts above to colour others)")
               + "; the rest grey.")
else:
    shown = None
event = st.plotly_chart(embedding_figure(df, color, shown), key="explore_chart", on_select="rerun",
                        selection_mode=("points", "box", "lasso"))
hover_images("explore_chart", _thumbnails(*key), key="explore_hover")
share = own_anchor_share(df)
if share == share:
    st.caption(f"On this map {100 * share:.0f}% of the labelled images lie nearest an anchor of their own concept.")
# the browser sends back item ids only; the store says which file each is (a forged event gets nothing)
selected = eng.selected_items([p.get("customdata") for p in (event.selection.points if event else [])])[:20]
if selected:
    st.caption(f"{len(selected)} selected images (click, box or lasso on the map)")
    cols = st.columns(5)
    for i, it in enumerate(selected):
        if it.path.exists():
            cols[i % 5].image(str(it.path), width="stretch")
        else:
            cols[i % 5].warning(f"item {it.id}: image file missing")
else:
    st.caption("Hover a point for its image and words; click, box or lasso points to see their images below.")
left, right = st.columns(2)
with left:
    st.subheader("R/D ratio (lower is better)")
    st.dataframe([{"scripts": k, "R/D": round(v, 3)} for k, v in rd.items()], hide_index=True)
    st.caption("all: each concept's images around their centre; zh, en, es: that script's images around their "
               "concept's centre over all scripts.")
with right:
    val = eng.model_metrics().get("val")
    st.subheader("Cross-lingual Acc@1 of the active model")
    if val:
        st.plotly_chart(accuracy_matrix_figure(val["image_to_text"]), key="explore_matrix")
        st.caption(f"{val['n_images']} renders of held-out fonts; whole lexicon as candidates.")
    else:
        st.info("The active model has no evaluation yet (`xmr eval`).")
