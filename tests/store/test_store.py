import sqlite3

import numpy as np
import pytest

from xmr_core.store.database import SCHEMA_VERSION, Store


def _records(store: Store, n: int, salt: str = "") -> list[dict]:
    out = []
    for i in range(n):
        sha, rel = store.put_image(f"image {salt}{i}".encode())
        out.append({"sha256": sha, "path": rel, "source": f"t{i}", "concept_id": "cat", "lang": "es"})
    return out


def test_schema_and_wal(tmp_path):
    s = Store(tmp_path)
    assert s.schema_version() == SCHEMA_VERSION
    db = sqlite3.connect(tmp_path / "store.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    Store(tmp_path)  # reopening migrates nothing and keeps data


def test_collections_items_and_dedup(tmp_path):
    s = Store(tmp_path)
    s.create_collection("demo")
    with pytest.raises(ValueError):
        s.create_collection("../etc")
    recs = _records(s, 3)
    ids = s.add_items("demo", recs, "m1", np.eye(3, 4, dtype=np.float32))
    again = s.add_items("demo", recs[:1], "m1", np.ones((1, 4), np.float32))
    assert again == ids[:1] and s.count_items("demo") == 3
    items = s.get_items(ids)
    assert items[ids[0]].path.exists() and items[ids[0]].concept_id == "cat"
    got_ids, vecs = s.embeddings("m1")
    assert list(got_ids) == ids and np.allclose(vecs[0], 1.0)
    assert s.remove_items([ids[1]]) == 1 and s.count_items() == 2
    assert s.embeddings("m1")[0].tolist() == [ids[0], ids[2]]  # cascade
    with pytest.raises(ValueError, match="no collection"):
        s.add_items("nope", recs, "m1", np.ones((3, 4)))


def test_content_addressed_images(tmp_path):
    s = Store(tmp_path)
    a = s.put_image(b"same bytes")
    b = s.put_image(b"same bytes")
    assert a == b and (tmp_path / a[1]).read_bytes() == b"same bytes"


_ADDER = r"""
import json, sys
import numpy as np
from xmr_core.store.database import Store
s = Store(sys.argv[1])
ids = []
for i in range(40):  # both processes add the same 40 images, one transaction each
    sha, rel = s.put_image(f"image shared{i}".encode())
    ids += s.add_items("c", [{"sha256": sha, "path": rel}], "m", np.ones((1, 4), np.float32))
print(json.dumps(ids))
"""


def test_two_processes_adding_at_once(tmp_path):
    import json
    import subprocess
    import sys

    Store(tmp_path).create_collection("c")
    procs = [subprocess.Popen([sys.executable, "-c", _ADDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    s = Store(tmp_path)
    assert s.count_items("c") == 40  # every item exactly once
    assert sorted(results[0]) == sorted(results[1])


def test_jobs_one_at_a_time(tmp_path):
    s = Store(tmp_path)
    j = s.create_job("reindex", {"model": "x"})
    with pytest.raises(RuntimeError, match="still running"):
        s.create_job("finetune", {})
    s.update_job(j, status="running", progress=0.5, message="half")
    assert s.get_job(j)["progress"] == 0.5
    s.update_job(j, status="done", result={"ok": 1})
    assert s.get_job(j)["result"] == {"ok": 1}
    s.create_job("finetune", {})  # allowed once the first is done


def test_annotations_and_concepts(tmp_path):
    s = Store(tmp_path)
    sha, rel = s.put_image(b"x")
    a = s.annotate(sha, str(rel), "cat", "es")
    s.relabel_annotation(a, "dog", "en")
    assert s.list_annotations()[0]["concept_id"] == "dog"
    s.delete_annotation(a)
    assert s.list_annotations() == []
    s.add_concept("user.quokka", "短尾", "quokka", "quokka")
    assert s.list_concepts()[0]["en"] == "quokka"
    with pytest.raises(sqlite3.IntegrityError):
        s.add_concept("user.quokka", "短尾", "quokka", "quokka")


def test_lookups_by_many_ids(tmp_path, monkeypatch):
    """More ids than SQLite takes as parameters in one statement (32,766 by default; this machine's build
    allows 250,000, so the test lowers it to 1,000): lookups read in chunks."""
    s = Store(tmp_path)
    s.create_collection("c")
    recs = [{"sha256": f"{i:064x}", "path": f"images/{i}.png", "source": f"{i}", "concept_id": "cat" if i % 2 else None,
             "lang": "en", "page_sha256": "", "bbox": None} for i in range(2500)]
    ids = s.add_items("c", recs, "m", np.zeros((2500, 4), np.float32))
    connect = s._connect

    def limited():
        db = connect()
        db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 1000)
        return db

    monkeypatch.setattr(s, "_connect", limited)
    assert len(s.get_items(ids)) == 2500 and len(s.labels(ids)) == 1250 and s.labels(ids[:3]) == {ids[1]: "cat"}
