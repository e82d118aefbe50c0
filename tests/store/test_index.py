import numpy as np
import pytest

from xmr_core.store.index import IndexConfig, VectorIndex, load_index, recall_at_k


def _data(n=2000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.arange(100, 100 + n, dtype=np.int64), v


def brute(vecs, ids, q, k):
    s = q @ vecs.T
    order = np.argsort(-s, axis=1)[:, :k]
    return ids[order]


def test_exact_search_matches_brute_force():
    ids, v = _data()
    idx = VectorIndex.build(ids, v, 32)
    assert not idx.approximate and len(idx) == 2000
    q = v[:20] + 0.05
    _, got = idx.search(q, 10)
    assert (got == brute(v, ids, q, 10)).all()


def _clustered(n, d=32, seed=0, centers=100):
    """Embeddings cluster by concept; uniform random vectors would be the worst case for IVF."""
    rng = np.random.default_rng(seed)
    c = np.random.default_rng(99).normal(size=(centers, d))
    v = (c[rng.integers(0, centers, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    return np.arange(100, 100 + n, dtype=np.int64), v / np.linalg.norm(v, axis=1, keepdims=True)


def test_ivf_recall_against_exact():
    ids, v = _clustered(12000)
    idx = VectorIndex.build(ids, v, 32, IndexConfig(exact_limit=1000))
    assert idx.approximate
    q = _clustered(200, seed=1)[1]
    _, got = idx.search(q, 10)
    assert recall_at_k(got, brute(v, ids, q, 10), 10) >= 0.95
    idx.cfg = IndexConfig(nprobe=1)  # one cell of ~280: recall must drop, so the cells are real
    idx.index.nprobe = 1
    _, got = idx.search(q, 10)
    assert recall_at_k(got, brute(v, ids, q, 10), 10) < 0.5


@pytest.mark.parametrize("approx", [False, True])
def test_remove_and_filter(approx):
    ids, v = _data(500)
    idx = VectorIndex.build(ids, v, 32, IndexConfig(exact_limit=100 if approx else 10_000))
    _, top = idx.search(v[:1], 1)
    assert top[0, 0] == ids[0]
    idx.remove(ids[:1])
    _, top = idx.search(v[:1], 3)
    assert ids[0] not in top[0] and len(idx) == 499
    allowed = ids[200:260]
    _, got = idx.search(v[:5], 5, allowed=allowed)
    assert set(got.ravel()) <= set(allowed)


@pytest.mark.parametrize("approx", [False, True])
def test_save_load_checks_record(tmp_path, approx):
    ids, v = _data(300)
    idx = VectorIndex.build(ids, v, 32, IndexConfig(exact_limit=100 if approx else 10_000))
    rec = {"model_id": "m1", "count": 300, "checksum": "abc"}
    idx.save(tmp_path / "i.faiss", rec)
    back, got = load_index(tmp_path / "i.faiss", {"model_id": "m1"})
    assert back.approximate == approx and got["count"] == 300
    assert (back.search(v[:3], 4)[1] == idx.search(v[:3], 4)[1]).all()
    assert (back.ids() == np.sort(ids)).all()
    with pytest.raises(ValueError, match="another state"):
        load_index(tmp_path / "i.faiss", {"model_id": "m2"})
    (tmp_path / "i.faiss").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="damaged"):
        load_index(tmp_path / "i.faiss", rec)


@pytest.mark.parametrize("approx", [False, True])
def test_a_garbled_body_is_refused(tmp_path, approx):
    """Bytes flipped inside the vectors keep FAISS's header valid: only the checksum of the content tells."""
    ids, v = _data(300)
    VectorIndex.build(ids, v, 32, IndexConfig(exact_limit=100 if approx else 10_000)).save(tmp_path / "i.faiss", {})
    raw = bytearray((tmp_path / "i.faiss").read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = b"\x7f" * 64  # floats of about 3e38 in the middle of the data
    (tmp_path / "i.faiss").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged"):
        load_index(tmp_path / "i.faiss", {})


def test_an_id_given_twice_is_held_once():
    ids, v = _data(10)
    idx = VectorIndex(32)
    idx.add(np.array([3, 3, 3, 4]), v[:4])
    assert len(idx) == 2 and idx.ids().tolist() == [3, 4]
    _, got = idx.search(v[2:3], 2)  # the last vector given for id 3 is the one kept
    assert got[0][0] == 3
    idx.add(np.array([4]), v[5:6])
    assert len(idx) == 2
