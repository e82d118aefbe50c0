"""The Milvus backend of the vector index against FAISS (the embedded default), for real: Milvus Lite in
process over a `.db` path, and a Milvus Lite server that two processes add to at once."""

import os
import subprocess
import sys

import numpy as np
import pytest

from xmr_core.store.index import VectorIndex
from xmr_core.store.milvus_index import MilvusIndex, open_milvus

pytest.importorskip("pymilvus")


def _data(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.arange(n, dtype=np.int64) * 3 + 7
    fields = [{"lang": ("zh", "en", "es")[i % 3], "collection": "a" if i % 2 else "b"} for i in range(n)]
    return ids, v, fields


def test_milvus_answers_as_faiss_does(tmp_path):
    ids, v, fields = _data()
    m = MilvusIndex.build(ids, v, v.shape[1], str(tmp_path / "x.db"), "items", fields)
    f = VectorIndex.build(ids, v, v.shape[1])
    assert len(m) == len(ids) and (m.ids() == np.sort(ids)).all()
    for allowed in (None, ids[::7]):
        (sm, im), (sf, i_f) = m.search(v[:8], 10, allowed=allowed), f.search(v[:8], 10, allowed=allowed)
        assert (im == i_f).all() and np.allclose(sm, sf, atol=1e-5)
    m.remove(ids[:50])
    f.remove(ids[:50])
    assert (m.ids() == f.ids()).all() and (m.search(v[60:62], 5)[1] == f.search(v[60:62], 5)[1]).all()
    m.add(ids[100:101], -v[100:101])  # an id added again is replaced
    assert len(m) == len(ids) - 50 and m.search(-v[100:101], 1)[1][0, 0] == ids[100]


def test_script_and_collection_filters_are_pushed_down(tmp_path):
    ids, v, fields = _data()
    m = MilvusIndex.build(ids, v, v.shape[1], str(tmp_path / "x.db"), "items", fields)
    _, got = m.search(v[:4], 20, where={"lang": ["en"], "collection": "a"})
    want = {int(i) for i, f in zip(ids, fields) if f["lang"] == "en" and f["collection"] == "a"}
    assert got.size and set(got.ravel().tolist()) <= want
    # the same as FAISS over exactly those ids
    f = VectorIndex.build(ids, v, v.shape[1])
    assert (got == f.search(v[:4], 20, allowed=np.array(sorted(want)))[1]).all()
    assert 'lang in ["en"]' in MilvusIndex.expression(where={"lang": "en"})
    with pytest.raises(ValueError, match="only lang and collection"):
        m.search(v[:1], 5, where={"path": "/etc/passwd"})


def test_a_saved_record_is_checked_when_reopened(tmp_path):
    ids, v, fields = _data()
    uri, rec = str(tmp_path / "x.db"), tmp_path / "index" / "items.faiss"
    m = MilvusIndex.build(ids, v, v.shape[1], uri, "items", fields)
    m.save(rec, {"model_id": "m1"})
    m.remove(ids[:3])  # the collection moves on after the record was written (a kill before the next save)
    m.client.close()
    with pytest.raises(ValueError, match="does not hold the ids"):
        open_milvus(uri, "items", rec, {"model_id": "m1"})
    with pytest.raises(ValueError, match="another state"):
        open_milvus(uri, "items", rec, {"model_id": "m2"})
    m = MilvusIndex(uri, "items", v.shape[1])
    m.save(rec, {"model_id": "m1"})
    m.client.close()
    again, got = open_milvus(uri, "items", rec, {"model_id": "m1"})
    assert len(again) == len(ids) - 3 and got["count"] == len(ids) - 3


WRITER = """
import sys
import numpy as np
from xmr_core.store.milvus_index import MilvusIndex
uri, start = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(start)
m = MilvusIndex(uri, "two_writers", 16)
for s in range(start, start + 200, 20):
    v = rng.standard_normal((20, 16)).astype(np.float32)
    m.add(np.arange(s, s + 20), v / np.linalg.norm(v, axis=1, keepdims=True))
"""


def test_two_processes_add_to_a_milvus_server_at_once(milvus_server):
    MilvusIndex.build(np.zeros(0, np.int64), np.zeros((0, 16), np.float32), 16, milvus_server, "two_writers")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, milvus_server, str(start)], env=env) for start in (0, 1000)]
    assert [w.wait(120) for w in writers] == [0, 0]
    got = MilvusIndex(milvus_server, "two_writers", 16).ids()
    assert (got == np.concatenate([np.arange(0, 200), np.arange(1000, 1200)])).all()


def test_the_vector_uri_names_faiss_a_milvus_lite_file_or_a_server(tmp_path, monkeypatch):
    from xmr_core.store.index import vector_uri

    monkeypatch.delenv("XMR_VECTOR_URI", raising=False)
    assert vector_uri(tmp_path) is None and vector_uri(tmp_path, "faiss") is None
    assert vector_uri(tmp_path, "index.db") == str(tmp_path.resolve() / "index.db")  # in the data folder
    assert vector_uri(tmp_path, "/srv/x.db") == "/srv/x.db"
    monkeypatch.setenv("XMR_VECTOR_URI", "http://milvus:19530")
    assert vector_uri(tmp_path) == "http://milvus:19530"
    with pytest.raises(ValueError, match=r"Milvus Lite file \(\*\.db\) or a Milvus server"):
        vector_uri(tmp_path, "milvus:19530")
