"""Evaluation per the contract in DESIGN.md: image->text over the whole lexicon for all 9 language pairs,
image->image mAP@10, R/D ratio, and single-image latency."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.paths import ASSETS
from xmr_core.data.preprocess import PreprocessConfig, preprocess
from xmr_core.data.render import MissingGlyph, SyntheticWords
from xmr_core.evaluate.metrics import (
    bucket_order,
    group_accuracy,
    length_bucket,
    map_at_k,
    rank_metrics,
    ranks_of_gold,
    rd_ratio,
)
from xmr_core.model.dual import DualEncoder


@dataclass
class EvalSet:
    """Preprocessed images with their concept and language (and a source description)."""

    x: np.ndarray  # (N, 1, H, W) float32
    concept_ids: list[str]
    langs: list[str]
    source: str
    raw: list | None = None  # original images or paths, kept for latency measurement
    styles: list[str] | None = None  # the font (or other source) of each image, for breakdowns


def render_eval_set(lexicon: Lexicon, pre: PreprocessConfig, split: str = "val", per_word: int = 1,
                    seed: int = 2024, concepts: int | None = None,
                    progress: Callable[[int, int], None] | None = None, keep_raw: int | None = 64,
                    case: str = "lower") -> EvalSet:
    """Renders of every lexicon word (or the first `concepts`) with the fonts of `split`, Latin words
    in the given letter `case`; the first `keep_raw` rendered images are kept as they are (all when None)."""
    ds = SyntheticWords(lexicon, split, seed=seed, kinds={"font": 1.0}, cases={case: 1.0})
    todo = lexicon.concepts[:concepts] if concepts else lexicon.concepts
    xs, cids, langs, raw, styles = [], [], [], [], []
    total = len(todo) * len(LANGS) * per_word
    for i, c in enumerate(todo):
        for j, lang in enumerate(LANGS):
            rng = np.random.default_rng([seed, i, j])
            for _ in range(per_word):
                try:
                    sample = ds.sample(c.concept_id, lang, rng)
                except MissingGlyph:
                    continue
                img = sample.image
                xs.append(preprocess(img, pre))
                cids.append(c.concept_id)
                langs.append(lang)
                styles.append(sample.style.source)
                if keep_raw is None or len(raw) < keep_raw:
                    raw.append(img)
        if progress:
            progress(min(total, (i + 1) * len(LANGS) * per_word), total)
    what = f"renders of the {split!r} fonts" + ("" if case == "lower" else f", Latin words in {case} case")
    return EvalSet(np.stack(xs), cids, langs, what, raw, styles)


def load_manifest_set(path: Path | str, lexicon: Lexicon, pre: PreprocessConfig,
                      keep_raw: int | None = 64) -> EvalSet:
    """A labelled-image manifest (CSV `path,text,lang,concept_id`, paths relative to its folder); the
    paths of the first `keep_raw` usable rows are kept (all when None)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        need = {"path", "text", "lang", "concept_id"}
        if not need <= set(reader.fieldnames or []):
            raise ValueError(f"{path}: header must include {sorted(need)}")
        rows = list(reader)
    xs, cids, langs, raw, problems = [], [], [], [], []
    for n, r in enumerate(rows, start=2):
        if r["lang"] not in LANGS:
            problems.append(f"line {n}: lang {r['lang']!r} not in {LANGS}")
            continue
        if r["concept_id"] not in lexicon:
            problems.append(f"line {n}: concept {r['concept_id']!r} is not in the model's lexicon")
            continue
        p = path.parent / r["path"]
        try:
            xs.append(preprocess(str(p), pre))
        except (ValueError, FileNotFoundError) as exc:
            problems.append(f"line {n}: {p.name}: {exc}")
            continue
        cids.append(r["concept_id"])
        langs.append(r["lang"])
        if keep_raw is None or len(raw) < keep_raw:
            raw.append(str(p))
    if not xs:
        raise ValueError(f"{path}: no usable rows" + ("; " + "; ".join(problems[:5]) if problems else ""))
    return EvalSet(np.stack(xs), cids, langs, f"manifest {path.name} ({len(problems)} rows skipped)", raw)


@torch.no_grad()
def embed_images(model: DualEncoder, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return torch.cat([model.encode_image(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)]).numpy()


Embedder = Callable[[np.ndarray], np.ndarray]  # (N, 1, H, W) ink maps -> (N, d) unit vectors


def torch_embedder(model: DualEncoder) -> Embedder:
    return lambda x: embed_images(model, x)


@torch.no_grad()
def measure_latency(embed: Embedder, images: list, pre: PreprocessConfig, repeats: int = 50) -> float:
    """p50 milliseconds for one image: preprocess + embed, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for i in range(repeats + 5):
            img = images[i % len(images)]
            t = time.perf_counter()
            embed(preprocess(img, pre)[None])
            if i >= 5:
                times.append(time.perf_counter() - t)
        return float(np.median(times) * 1000)
    finally:
        torch.set_num_threads(threads)


def evaluate(model: DualEncoder, lexicon: Lexicon, data: EvalSet, embed: Embedder | None = None,
             vectors: np.ndarray | None = None, latency: bool = True, per_image: bool = False) -> dict:
    """All metrics of the eval contract for one model on one labelled image set; `embed` replaces the
    model's own visual encoder (an ONNX path, fastpath.py); `vectors` are the set's embeddings by it when
    the caller already has them (`embed` is then used only to time single queries); `per_image` adds
    `within_top1`, each image's top-1 within its own script as "1" or "0" (for a paired comparison)."""
    model.eval()
    embed = embed or torch_embedder(model)
    v = embed(data.x) if vectors is None else vectors
    if len(v) != len(data.x):
        raise ValueError(f"{len(v)} vectors for {len(data.x)} images")
    ids = lexicon.ids()
    cidx = np.array([ids.index(c) for c in data.concept_ids])
    langs = np.array(data.langs)
    with torch.no_grad():
        texts = {t: model.encode_text(lexicon.words(t)).numpy() for t in LANGS}
    i2t, i2i = {}, {}
    own = np.zeros(len(v), dtype=bool)  # top-1 correct among the words of the image's own language
    for q in LANGS:
        mq = langs == q
        for t in LANGS:
            to_text = v[mq] @ texts[t].T
            i2t[f"{q}->{t}"] = rank_metrics(to_text, cidx[mq])
            if q == t:
                own[mq] = ranks_of_gold(to_text, cidx[mq]) == 0
            mt = langs == t
            sim = v[mq] @ v[mt].T
            rel = cidx[mq][:, None] == cidx[mt][None, :]
            if q == t:  # a query is not its own answer
                np.fill_diagonal(sim, -np.inf)
                np.fill_diagonal(rel, False)
            i2i[f"{q}->{t}"] = map_at_k(sim, rel, 10)
    asked = [q for q in LANGS if (langs == q).any()]  # a small set (a queue) may lack a script
    within = float(np.mean([i2t[f"{q}->{q}"]["acc@1"] for q in asked])) if asked else float("nan")
    cross = float(np.mean([i2t[f"{q}->{t}"]["acc@1"] for q in asked for t in LANGS if q != t])) if asked else float("nan")
    words = [lexicon.concepts[c].word(lang) for c, lang in zip(cidx, langs)]
    rd = {"all": rd_ratio(v, cidx)}
    for lang in LANGS:
        m = langs == lang
        rd[lang] = rd_ratio(v[m], cidx[m])
    return {
        "source": data.source,
        "n_images": int(len(v)),
        "n_concepts": int(len(set(data.concept_ids))),
        "n_candidates": len(lexicon),
        "image_to_text": i2t,
        "within_acc@1": within,
        "cross_acc@1": cross,
        "image_to_image": i2i,
        "rd_ratio": rd,
        "within_by_length": group_accuracy(own, [length_bucket(w, lang) for w, lang in zip(words, langs)],
                                           order=bucket_order),
        **({"within_by_style": group_accuracy(own, data.styles)} if data.styles else {}),
        **({"within_top1": "".join("1" if o else "0" for o in own)} if per_image else {}),
        "latency_ms_p50": measure_latency(embed, data.raw or list(data.x[:, 0]), model.cfg.preprocess)
        if latency else float("nan"),
    }


def evaluate_signals(model, lexicon: Lexicon, data: EvalSet, batch: int = 256) -> dict:
    """`evaluate` of a reading model (model/reading.py) as the engine ranks, by its fused embedding, with
    each signal's own within / cross Acc@1 and image->image mAP@10 under `signals`."""
    parts: dict[str, list] = {}
    for i in range(0, len(data.x), batch):
        for k, v in model.encode_signals(data.x[i:i + batch], every=True).items():
            parts.setdefault(k, []).append(v)
    signals = {k: np.concatenate(v) for k, v in parts.items()}
    embed = lambda x: model.encode_image(x).numpy()  # noqa: E731 - single queries, for the latency
    res = evaluate(model, lexicon, data, embed=embed, vectors=model.combine(signals))
    res["signals"] = {}
    for k, v in signals.items():
        if k == "sure":
            res["sure_share"] = float(v.mean())  # images embedded by their reading alone
            continue
        r = evaluate(model, lexicon, data, embed=embed, vectors=v, latency=False)
        res["signals"][k] = {"within_acc@1": r["within_acc@1"], "cross_acc@1": r["cross_acc@1"],
                             "map@10": float(np.mean([x["map@10"] for x in r["image_to_image"].values()]))}
    return res


UNSEEN_WORDS = ASSETS / "unseen_words.tsv"


def unseen_word_pairs(lexicon: Lexicon, path: Path | str = UNSEEN_WORDS) -> list[tuple[str, str]]:
    """English-Spanish pairs of everyday nouns (assets/unseen_words.tsv), those in `lexicon` left out."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(r["en"], r["es"]) for r in csv.DictReader(f, delimiter="\t")]
    en, es = set(lexicon.words("en")), set(lexicon.words("es"))
    return [(a, b) for a, b in rows if a not in en and b not in es]


@torch.no_grad()
def translation_top1(embed_text: Callable[[list[str]], np.ndarray], lexicon: Lexicon,
                     pairs: list[tuple[str, str]]) -> dict[str, float]:
    """en->es and es->en top-1 (%) of word pairs outside the lexicon, among the target language's
    lexicon words plus the pairs' words: does a text tower still translate words it was not trained on?"""
    out = {}
    for a, b, src, dst in ((0, 1, "en", "es"), (1, 0, "es", "en")):
        cand = lexicon.words(dst) + [p[b] for p in pairs]
        top = (embed_text([p[a] for p in pairs]) @ embed_text(cand).T).argmax(1)
        out[f"{src}->{dst}"] = 100 * float(np.mean([cand[j] == p[b] for j, p in zip(top, pairs)]))
    return out


def format_eval(res: dict) -> str:
    from xmr_core.data.lexicon import LANGS

    lines = [f"{res['n_images']} images, {res['n_concepts']} concepts, {res['n_candidates']} candidates per language "
             f"({res['source']})",
             "image->text Acc@1 (rows: query script, columns: target script)", "       " + "".join(f"{t:>8s}" for t in LANGS)]
    for q in LANGS:
        lines.append(f"  {q:4s} " + "".join(f"{100 * res['image_to_text'][f'{q}->{t}']['acc@1']:8.2f}" for t in LANGS))
    lines.append(f"within-language Acc@1 {100 * res['within_acc@1']:.2f}   cross-lingual Acc@1 {100 * res['cross_acc@1']:.2f}")
    mrr = sum(v["mrr"] for v in res["image_to_text"].values()) / 9
    mp = sum(v["map@10"] for v in res["image_to_image"].values()) / 9
    lines.append(f"mean MRR {mrr:.4f}   image->image mAP@10 {mp:.4f}   R/D " +
                 " ".join(f"{k}={v:.3f}" for k, v in res["rd_ratio"].items()))
    if res.get("within_by_length"):
        lines.append("within-language Acc@1 by word length: " + "  ".join(
            f"{k} {100 * v['acc@1']:.1f} (n={v['n']})" for k, v in res["within_by_length"].items()))
    if res.get("within_by_style"):
        from xmr_core.evaluate.card import weakest_styles

        lines.append("weakest styles: " + "  ".join(f"{k} {100 * v['acc@1']:.1f} (n={v['n']})"
                                                     for k, v in weakest_styles(res, 5)))
    for name, sig in res.get("signals", {}).items():
        lines.append(f"signal alone: {name:8s} within {100 * sig['within_acc@1']:.2f}   cross {100 * sig['cross_acc@1']:.2f}"
                     f"   image->image mAP@10 {sig['map@10']:.4f}")
    if "sure_share" in res:
        lines.append(f"embedded by the reading alone (sure): {100 * res['sure_share']:.1f}% of the images")
    lines.append(f"latency p50 {res['latency_ms_p50']:.2f} ms (preprocess + embed, one thread)")
    return "\n".join(lines)
