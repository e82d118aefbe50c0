"""The engine: the one facade the app and the CLI use for search, recognition and collections."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from xmr_core.data.lexicon import Concept, Lexicon
from xmr_core.data.paths import data_dir as default_data_dir
from xmr_core.model.checkpoint import load_engine_model
from xmr_core.model.fastpath import load_fast_path
from xmr_core.search.collection import Collections
from xmr_core.search.exemplars import Exemplars
from xmr_core.search.fusion import FusionConfig
from xmr_core.search.indexing import Indexing
from xmr_core.search.ranking import Ranking
from xmr_core.search.reading import Reading
from xmr_core.search.results import Progress
from xmr_core.store.database import Store
from xmr_core.store.index import IndexConfig, vector_uri
from xmr_core.store.registry import active_model_dir, model_id

# Attention fusion for labelled items: on, as measured by benchmarks/fusion.py (docs/data.md).
DEFAULT_FUSION: FusionConfig | None = FusionConfig(beta=0.25)


class Engine(Indexing, Reading, Ranking, Collections, Exemplars):
    """Model + store + index for one data folder. Thread-safe for searches; writes are serialised, also
    across processes: the index is changed and saved only under a file lock, after catching up by id
    with what the store holds (`_sync_index`), so any interleaving of writers leaves it exact, and a
    long-running engine picks up what other processes added before it answers a query."""

    def __init__(self, data: Path | str | None = None, model_dir: Path | str | None = None,
                 index_cfg: IndexConfig | None = None, progress: Progress | None = None,
                 fusion: FusionConfig | None = DEFAULT_FUSION, fast_path: bool = True,
                 vector: str | None = None) -> None:
        self.store = Store(data or default_data_dir())
        # the vector backend: FAISS in the data folder, or Milvus (`vector` or XMR_VECTOR_URI; index.py)
        self.vector_uri = vector_uri(self.store.root, vector)
        self.model_dir = Path(model_dir) if model_dir else active_model_dir(self.store)
        self.model, base_lexicon, self.model_config = load_engine_model(self.model_dir, torch.get_num_threads())
        self.reads = "reading" in self.model_config  # the visual tower stands on the pretrained reader
        # the ONNX (INT8 or FP32) visual encoder the model chose (fastpath.py); INT8 embeddings are kept
        # apart from FP32 ones, so the id names that path
        fast = load_fast_path(self.model_dir, torch.get_num_threads()) if fast_path and not self.reads else None
        self.fast_path, self.fast = fast if fast else ("torch", None)
        self.model_id = model_id(self.model_dir) + ("-int8" if self.fast_path == "int8" else "")
        # a fine-tuned model's lexicon already holds the user concepts it was trained with
        self.set_lexicon(base_lexicon.with_concepts(
            Concept(c["concept_id"], c["zh"], c["en"], c["es"], "user") for c in self.store.list_concepts()
            if c["concept_id"] not in base_lexicon))
        self.pre = self.model.cfg.preprocess
        self.index_cfg = index_cfg or IndexConfig()
        self.fusion = fusion  # None: the index holds image embeddings only
        self._lock = threading.RLock()
        self._reader = None  # the pretrained reader (model/reader.py), loaded on first use
        self._table = None  # the lexicon's words as the reader spells them (model/ctc.py)
        self._translator = None  # translations of any word (translate.py), made on first use
        self._word_reader = None  # the word lists as the reader spells them (open_reading.py)
        self._fold = None  # the reader's symbols with letter case folded (reading_search.py)
        self._pages = None  # the page reader (pages.py), loaded on first use
        self._looks: dict[str, np.ndarray] = {}  # labelled samples' looks by image sha256 (exemplars.py)
        self._synced = -1  # the store version the index last caught up with
        self._allowed: dict[tuple, np.ndarray] = {}  # search filters at self._synced
        self.busy: str | None = None  # why this process holds no index (index.py: Milvus Lite held elsewhere)
        self.index = self._open_index(progress)

    def set_lexicon(self, lexicon: Lexicon) -> None:
        """The concepts the engine knows (the model's and the user's): anchors and readable words follow."""
        self.lexicon, self._anchors, self._table, self._translator = lexicon, {}, None, None
        if self.reads and lexicon.hash() != self.model.lexicon.hash():
            self.model.set_lexicon(lexicon)

    # ------------------------------------------------------------------ embedding
    @torch.no_grad()
    def embed_images(self, xs: np.ndarray, batch: int = 128) -> np.ndarray:
        encode = self.fast or (lambda x: self.model.encode_image(torch.from_numpy(x)).numpy())
        out = [encode(xs[i:i + batch]) for i in range(0, len(xs), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.model.cfg.embed_dim), np.float32)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.model.encode_text(texts).numpy()

    def anchors(self, lang: str) -> np.ndarray:
        """Text anchors of every lexicon concept in `lang` (cached)."""
        if lang not in self._anchors:
            self._anchors[lang] = self.embed_text(self.lexicon.words(lang))
        return self._anchors[lang]

    def model_metrics(self) -> dict:
        """The active model's metrics.json (empty when it has none)."""
        import json

        p = self.model_dir / "metrics.json"
        return json.loads(p.read_text()) if p.exists() else {}
