"""Labelling new samples into the fine-tune queue: suggestions, new concepts, relabel, export."""

from __future__ import annotations

import re

import numpy as np

from xmr_core.data.export import manifest_zip
from xmr_core.data.lexicon import LANGS, Concept, validate_concept
from xmr_core.data.preprocess import ImageInput, png_bytes, preprocess
from xmr_core.search.engine import Engine
from xmr_core.search.exemplars import ExemplarSet


def suggest(engine: Engine, image: ImageInput, top: int = 5,
            exemplars: ExemplarSet | None = None) -> list[tuple[str, str, float]]:
    """Concepts for a sample as (concept_id, language its word is written in, model score): first the
    lexicon word the reader finds most likely, then the model's nearest concepts; with a user's
    `exemplars` (exemplars.py), a sample that looks like ones they labelled suggests those samples'
    concept first, in their script, and its scores come from the fused embedding.

    The language comes from the reader (which of the concept's three words the image shows): the
    model's embedding is the same for a concept in every script, so its best-scoring language was a
    guess (on 600 `val` renders it matched the written script 34% of the time; the reader's most likely
    word 99% of 300, docs/diagnosis.md)."""
    v, read = engine.embed_and_read(image)  # read: (languages, concepts)
    near = []
    if exemplars is not None and len(exemplars):
        v, near = exemplars.fuse(v, engine.look_of(preprocess(image, engine.pre)[None])[0])
    sem = engine.concept_scores(v).max(0)  # (concepts,)
    ids = engine.lexicon.ids()
    first = engine.lexicon.index(near[0][0]) if near else int(np.unravel_index(np.argmax(read), read.shape)[1])
    order = [first] + [int(i) for i in np.argsort(-sem) if i != first][:top - 1]
    lang = [near[0][1] if near and i == first else LANGS[int(read[:, i].argmax())] for i in order]
    return [(ids[i], lg, float(sem[i])) for i, lg in zip(order, lang)]


def save_annotation(engine: Engine, image: ImageInput, concept_id: str, lang: str, author: str = "") -> int:
    """Store the sample and queue it for fine-tuning; ValueError for a blank image or unknown label."""
    if concept_id not in engine.lexicon:
        raise ValueError(f"unknown concept {concept_id!r}: pick one from the lexicon or create it")
    if lang not in LANGS:
        raise ValueError(f"language must be one of {LANGS}")
    raw = png_bytes(image)
    preprocess(raw, engine.pre)  # refuses blank or unreadable samples before anything is stored
    sha, rel = engine.store.put_image(raw, ".png")
    return engine.store.annotate(sha, str(rel), concept_id, lang, author)


def _editable(engine: Engine, user: str, ann_id: int) -> dict:
    """The queued annotation `ann_id` if `user` may change it (their own, or they are the reviewer)."""
    from xmr_core.store.users import may_edit

    ann = next((a for a in engine.store.list_annotations(None) if a["id"] == ann_id), None)
    if ann is None:
        raise ValueError(f"no annotation {ann_id}")
    if not may_edit(engine.store, user, ann):
        raise PermissionError(f"annotation {ann_id} is {ann['author'] or 'nobody'}'s: only they or the project's "
                              "reviewer (`xmr user NAME --role reviewer`) may change it")
    return ann


def relabel_annotation(engine: Engine, user: str, ann_id: int, concept_id: str, lang: str) -> None:
    """Change a queued sample's concept and script, as `user` (PermissionError for another's)."""
    if concept_id not in engine.lexicon or lang not in LANGS:
        raise ValueError(f"unknown concept {concept_id!r} or script {lang!r}")
    _editable(engine, user, ann_id)
    engine.store.relabel_annotation(ann_id, concept_id, lang)


def delete_annotation(engine: Engine, user: str, ann_id: int) -> None:
    """Take a sample out of the queue, as `user` (PermissionError for another's)."""
    _editable(engine, user, ann_id)
    engine.store.delete_annotation(ann_id)


def create_concept(engine: Engine, zh: str, en: str, es: str) -> Concept:
    """A user-defined concept, validated, stored and usable at once (its anchors come from the text tower)."""
    en_id = re.sub(r"[^a-z0-9]+", "_", en.strip().lower()).strip("_") or "concept"
    concept = Concept(f"user.{en_id}", zh.strip(), en.strip().lower(), es.strip().lower(), "user")
    validate_concept(concept)
    if concept.concept_id in engine.lexicon:
        raise ValueError(f"a concept {concept.concept_id!r} exists already")
    lexicon = engine.lexicon.with_concepts([concept])  # refuses a word another concept uses
    engine.store.add_concept(concept.concept_id, concept.zh, concept.en, concept.es)
    engine.set_lexicon(lexicon)
    return concept


def queue_zip(engine: Engine) -> bytes:
    """The fine-tune queue as a zip: its images and the manifest (DESIGN.md's labelled-image columns)."""
    return manifest_zip([(engine.store.root / a["path"], {"text": engine.lexicon.get(a["concept_id"]).word(a["lang"]),
                                                           "lang": a["lang"], "concept_id": a["concept_id"],
                                                           "author": a["author"]})
                         for a in engine.store.list_annotations()])


def query_script(engine: Engine, image: ImageInput, concept_id: str) -> str:
    """The script an image of `concept_id` is written in (a query whose hit of that concept the user
    marked right): the language whose word for it the reader finds most likely in the image."""
    _, read = engine.embed_and_read(image)  # (languages, concepts)
    return LANGS[int(read[:, engine.lexicon.index(concept_id)].argmax())]
