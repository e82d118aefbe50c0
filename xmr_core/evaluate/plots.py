"""Plotly figures as pure functions of data frames (the app and `xmr eval --tsne` share them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def project_2d(emb: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D coordinates of embeddings by t-SNE (slow, faithful locally) or PCA (fast)."""
    if method not in ("tsne", "pca"):
        raise ValueError(f"projection {method!r}: expected 'tsne' or 'pca'")
    if method == "pca" or len(emb) < 5:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(emb)
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(emb) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(emb)


def embedding_frame(images: np.ndarray, image_rows: list[dict], anchors: np.ndarray, anchor_rows: list[dict],
                    method: str = "tsne") -> pd.DataFrame:
    """One table of image embeddings and text anchors (column `kind`) with their 2-D map coordinates."""
    xy = project_2d(np.concatenate([images, np.asarray(anchors).reshape(-1, images.shape[1])]), method)
    df = pd.DataFrame([{**r, "kind": "image"} for r in image_rows] + [{**r, "kind": "anchor"} for r in anchor_rows])
    df["x"], df["y"] = xy[:, 0], xy[:, 1]
    return df


def own_anchor_share(df: pd.DataFrame) -> float:
    """Of the labelled images on a map, the share whose nearest anchor on the map is their own concept's
    (how well the 2-D picture keeps a concept's scripts and anchors together); NaN without anchors."""
    img = df[(df.kind == "image") & df.concept.isin(set(df[df.kind == "anchor"].concept))]
    anc = df[df.kind == "anchor"]
    if not len(img) or not len(anc):
        return float("nan")
    a = anc[["x", "y"]].to_numpy()
    d = ((img[["x", "y"]].to_numpy()[:, None, :] - a[None]) ** 2).sum(-1)
    return float((anc.concept.to_numpy()[d.argmin(1)] == img.concept.to_numpy()).mean())


GREY = "#c8c8c8"


def embedding_figure(df: pd.DataFrame, color: str = "lang", highlight: list[str] | None = None) -> go.Figure:
    """Scatter of a frame with columns x, y, lang, concept, kind ('image'/'anchor') and label (and
    item_id, carried as custom data so a selection can show the images; never a file path). Coloured by
    concept, only the `highlight` concepts get colours (at most 20); the rest are grey "other"."""
    df = df.copy()
    if color == "concept":
        keep = set((highlight or [])[:20])
        df["concept"] = [c if c in keep else "other" for c in df["concept"]]
    df["words"] = df["words"] if "words" in df else df["label"]
    for col in ("lang", "style", "kind"):  # what hover shows, blank where a frame does not say
        if col not in df:
            df[col] = ""
    order = {"concept": sorted(set(df["concept"]) - {"other"}) + ["other"]} if color == "concept" else {}
    fig = px.scatter(df, x="x", y="y", color=color, symbol="kind", category_orders=order,
                     custom_data=["item_id", "words", "lang", "style", "kind"] if "item_id" in df else
                     ["label", "words", "lang", "style", "kind"],
                     symbol_map={"image": "circle", "anchor": "star"}, color_discrete_map={"other": GREY},
                     color_discrete_sequence=px.colors.qualitative.Dark24)  # no colour near the grey
    fig.update_traces(marker={"size": 7, "opacity": 0.8},
                      hovertemplate="<b>%{customdata[1]}</b><br>%{customdata[4]} · %{customdata[2]} · "
                                    "%{customdata[3]}<extra></extra>")
    fig.update_layout(legend_title_text=color, xaxis_visible=False, yaxis_visible=False, height=650)
    return fig


def accuracy_matrix_figure(acc: dict[str, dict], langs: tuple[str, ...] = ("zh", "en", "es")) -> go.Figure:
    """3x3 heat map of image->text Acc@1 (rows: query script, columns: target script)."""
    z = [[acc[f"{q}->{t}"]["acc@1"] * 100 for t in langs] for q in langs]
    fig = go.Figure(go.Heatmap(z=z, x=list(langs), y=list(langs), text=[[f"{v:.1f}" for v in r] for r in z],
                               texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=100))
    fig.update_layout(xaxis_title="target script", yaxis_title="query script", height=380)
    return fig
