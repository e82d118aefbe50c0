"""Do a model's text embeddings still translate words outside its lexicon? (prints a table)

A typed query, and the anchor of a concept an annotator adds, go through the model's text tower, so a
tower trained on the lexicon's words (a trained DAN top) can lose what USE-m3 knows about the rest.
English-Spanish pairs of everyday nouns, those in the model's lexicon left out (70 remain with the
bundled lexicon); for each model and for USE-m3's own vectors, top-1 translation among the target
language's lexicon words plus these words.

    python benchmarks/unseen_words.py [MODEL_DIR ...]   (default: the bundled model)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from xmr_core.checkpoint import load_model_dir
from xmr_core.paths import ASSETS

PAIRS = (
    "anchor ancla|armchair sillón|badge insignia|bandage venda|barrel barril|beard barba|blanket manta|bucket cubo|"
    "candle vela|cage jaula|carpet alfombra|castle castillo|chain cadena|chimney chimenea|coin moneda|comb peine|"
    "crown corona|cushion cojín|dagger daga|drum tambor|feather pluma|fence valla|flag bandera|fountain fuente|"
    "funnel embudo|glue pegamento|hammer martillo|harbor puerto|helmet casco|hook gancho|jar tarro|kettle hervidor|"
    "ladder escalera|lamp lámpara|lantern linterna|lock cerradura|mask máscara|needle aguja|nest nido|oar remo|"
    "owl búho|padlock candado|pearl perla|pillow almohada|puddle charco|rope cuerda|saw sierra|shovel pala|"
    "shield escudo|skull cráneo|sleeve manga|spoon cuchara|stamp sello|sword espada|tent tienda|thread hilo|"
    "thumb pulgar|torch antorcha|tray bandeja|trumpet trompeta|violin violín|wheel rueda|whistle silbato|wing ala|"
    "wire alambre|wolf lobo|worm gusano|anvil yunque|beetle escarabajo|broom escoba|cliff acantilado|cradle cuna|"
    "eagle águila|ghost fantasma|goat cabra|hedgehog erizo|jewel joya|kite cometa|lizard lagarto|moth polilla|"
    "mule mula|walnut nuez|pebble guijarro|pigeon paloma|pumpkin calabaza|quilt edredón|raft balsa|rake rastrillo|"
    "seal foca|snail caracol|swan cisne|thorn espina|throne trono|vase jarrón|wand varita|parrot loro|whale ballena|"
    "crab cangrejo|camel camello|lemon limón|squirrel ardilla|dolphin delfín|lighthouse faro|umbrella paraguas"
)


@torch.no_grad()
def translation_top1(embed, pairs: list[tuple[str, str]], lexicon) -> dict[str, float]:
    """en->es and es->en top-1 (%) among the target's lexicon words plus the pairs' words."""
    out = {}
    for a, b, la, lb in ((0, 1, "en", "es"), (1, 0, "es", "en")):
        cand = lexicon.words(lb) + [p[b] for p in pairs]
        top = (embed([p[a] for p in pairs]) @ embed(cand).T).argmax(1)
        out[f"{la}->{lb}"] = 100 * float(np.mean([cand[j] == p[b] for j, p in zip(top, pairs)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=[str(ASSETS / "models" / "default")])
    args = ap.parse_args()
    rows = []
    for i, path in enumerate(args.models):
        model, lexicon, _ = load_model_dir(path)
        model.eval()
        pairs = [tuple(p.split()) for p in PAIRS.split("|")]
        pairs = [p for p in pairs if p[0] not in set(lexicon.words("en")) and p[1] not in set(lexicon.words("es"))]
        if i == 0:
            rows.append(("USE-m3 itself", translation_top1(lambda w: model.text.use_vectors(w).numpy(), pairs, lexicon)))
        top = "trained" if model.cfg.text.trainable_top else "frozen"
        rows.append((f"{path} (DAN top {top})",
                     translation_top1(lambda w: model.encode_text(w).numpy(), pairs, lexicon)))
    print(f"{len(pairs)} pairs outside the lexicon; top-1 translation (%)\n")
    print("| text embeddings | en->es | es->en |\n|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['en->es']:.1f} | {r['es->en']:.1f} |")


if __name__ == "__main__":
    main()
