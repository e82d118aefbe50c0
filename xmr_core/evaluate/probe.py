"""A quick accuracy probe on held-out fonts, used while training (the full evaluation is `evaluate`)."""

from __future__ import annotations

import numpy as np
import torch

from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.preprocess import PreprocessConfig, preprocess
from xmr_core.data.render import MissingGlyph, SyntheticWords
from xmr_core.model.dual import DualEncoder


def make_probe(lexicon: Lexicon, pre: PreprocessConfig, n_concepts: int = 300, split: str = "val", seed: int = 123):
    """Pre-render a fixed probe set (preprocessed as the model expects); returns
    probe(model) -> {'within_acc@1', 'cross_acc@1'}."""
    ds = SyntheticWords(lexicon, split, seed=seed)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(lexicon), size=min(n_concepts, len(lexicon)), replace=False)
    xs, cs, ls = [], [], []
    for ci in chosen:
        for li, lang in enumerate(LANGS):
            try:
                xs.append(preprocess(ds.sample(lexicon.concepts[ci].concept_id, lang, rng).image, pre))
            except (MissingGlyph, ValueError):
                continue
            cs.append(int(ci))
            ls.append(li)
    x, c, lang_idx = torch.from_numpy(np.stack(xs)), np.array(cs), np.array(ls)

    def probe(model: DualEncoder) -> dict:
        with torch.no_grad():
            dev = model.logit_scale.device
            v = torch.cat([model.encode_image(x[i:i + 256].to(dev)).cpu() for i in range(0, len(x), 256)]).numpy()
            acc = np.zeros((3, 3))
            for t, tl in enumerate(LANGS):
                tf = model.encode_text(lexicon.words(tl)).cpu().numpy()
                pred = (v @ tf.T).argmax(1)
                for q in range(3):
                    m = lang_idx == q
                    acc[q, t] = (pred[m] == c[m]).mean()
        within = float(np.mean(np.diag(acc)))
        cross = float((acc.sum() - np.trace(acc)) / 6)
        return {"within_acc@1": round(within, 4), "cross_acc@1": round(cross, 4)}

    return probe
