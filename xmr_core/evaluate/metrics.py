"""Retrieval metrics as pure functions of similarity matrices and labels."""

from __future__ import annotations

import numpy as np

from xmr_core.data.lexicon import LANGS


def ranks_of_gold(sim: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """0-based rank of each query's gold candidate (ties broken pessimistically)."""
    g = sim[np.arange(len(sim)), gold]
    return (sim > g[:, None]).sum(1) + (sim == g[:, None]).sum(1) - 1


def rank_metrics(sim: np.ndarray, gold: np.ndarray, ks: tuple[int, ...] = (1, 3, 5)) -> dict[str, float]:
    """Acc@K and MRR for queries (rows of `sim`) each with one gold candidate column."""
    if len(sim) == 0:
        return {**{f"acc@{k}": float("nan") for k in ks}, "mrr": float("nan"), "n": 0}
    r = ranks_of_gold(sim, gold)
    out = {f"acc@{k}": float((r < k).mean()) for k in ks}
    out["mrr"] = float((1.0 / (r + 1)).mean())
    out["n"] = int(len(sim))
    return out


def map_at_k(sim: np.ndarray, relevant: np.ndarray, k: int = 10) -> dict[str, float]:
    """mAP@k and Acc@1 for image->image retrieval; `relevant` is a boolean (Q, C) matrix.

    AP@k = sum over hits within the top k of precision@i, divided by min(k, number relevant);
    queries with nothing relevant are left out."""
    keep = relevant.any(1)
    sim, relevant = sim[keep], relevant[keep]
    if len(sim) == 0:
        return {f"map@{k}": float("nan"), "acc@1": float("nan"), "n": 0}
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(relevant, order, 1).astype(np.float64)
    prec = np.cumsum(hits, 1) / np.arange(1, hits.shape[1] + 1)
    ap = (prec * hits).sum(1) / np.minimum(k, relevant.sum(1))
    return {f"map@{k}": float(ap.mean()), "acc@1": float(hits[:, 0].mean()), "n": int(len(sim))}


def rd_ratio(emb: np.ndarray, labels: np.ndarray, members: np.ndarray | None = None) -> float:
    """R/D: mean distance of members to their concept centroid (averaged over concepts) divided by the
    mean pairwise distance between centroids. Lower is better. Concepts need >= 1 member; D needs >= 2.
    With a boolean `members` mask, R counts only those (e.g. one script's images) while the centroids
    come from every row: how far that part sits from its concepts' centres."""
    concepts = np.unique(labels)
    if len(concepts) < 2:
        return float("nan")
    members = np.ones(len(labels), bool) if members is None else np.asarray(members, bool)
    cents, radii = [], []
    for c in concepts:
        m = emb[labels == c]
        cen = m.mean(0)
        cents.append(cen)
        mine = emb[(labels == c) & members]
        if len(mine):
            radii.append(np.linalg.norm(mine - cen, axis=1).mean())
    if not radii:
        return float("nan")
    cents = np.stack(cents)
    sq = (cents ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * cents @ cents.T, 0)
    iu = np.triu_indices(len(cents), 1)
    return float(np.mean(radii) / np.sqrt(d2[iu]).mean())


def group_accuracy(correct: np.ndarray, groups: list, order=None) -> dict[str, dict]:
    """Share of correct queries per group (a font, a word-length bucket), groups sorted (by `order`,
    a key function, when given)."""
    correct = np.asarray(correct, dtype=bool)
    keys = np.array([str(g) for g in groups])
    return {str(g): {"acc@1": float(correct[keys == g].mean()), "n": int((keys == g).sum())}
            for g in sorted(set(keys.tolist()), key=order)}


def bucket_order(bucket: str) -> tuple:
    """Sort key of `length_bucket` names: by language in LANGS order, then by length."""
    lang, rest = bucket.split(":")
    return (LANGS.index(lang) if lang in LANGS else len(LANGS), lang, int(rest.rstrip("+").split("-")[0]))


def length_bucket(word: str, lang: str) -> str:
    """Word-length bucket for breakdowns: characters for zh, letters in pairs for Latin scripts."""
    n = len(word)
    if lang == "zh":
        return f"zh:{min(n, 4)}{'+' if n >= 4 else ''}"
    lo = {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 6, 7: 6, 8: 8, 9: 8}.get(n, 10)
    return f"{lang}:{lo}+" if lo == 10 else f"{lang}:{lo}-{3 if lo == 1 else lo + 1}"
