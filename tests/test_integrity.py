"""Issue 23: security and data integrity of the engine, store, index, registry and CLI. Each test checks
what one of the defects an outside probe found broke (docs/integrity.md: the probes on the code before
the fixes, and after)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import SMALL, bomb_png, png, word_png
from PIL import Image, ImageDraw

from xmr_core.cli import main
from xmr_core.data.lexicon import Concept, Lexicon
from xmr_core.data.paths import PROJECT_ROOT
from xmr_core.model.checkpoint import save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.search.engine import Engine
from xmr_core.search.jobs import run_job, start_job
from xmr_core.store.database import Store, StoreDamaged
from xmr_core.store.doctor import check
from xmr_core.store.items import ids_checksum
from xmr_core.store.registry import discard_model, new_model_dir


@pytest.fixture(scope="module")
def model_dir(lexicon, tmp_path_factory):
    torch.manual_seed(0)
    return save_model_dir(DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:40]), tmp_path_factory.mktemp("m") / "m")


def store_ids(eng: Engine) -> list[int]:
    return eng.store.embedded_ids(eng.model_id).tolist()


# ---------------------------------------------------------------- 3. concurrent writers, 7. duplicates

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from helpers import word_png
    from xmr_core.search.engine import Engine
    data, model, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    eng = Engine(data, model_dir=model)
    for start in range(0, n, 5):
        batch = [(f"w{{who}}-{{i}}", word_png(f"w{{who}} {{i}}", seed=who * 1000 + i)) for i in range(start, start + 5)]
        rep = eng.add("shared", batch)
        assert len(rep.added) == 5, rep.errors
""")


def test_four_writers_leave_the_index_exact(model_dir, tmp_path, backend):
    data = tmp_path / "data"
    watcher = Engine(data, model_dir=model_dir)  # a long-running app, open before the writers start
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(PROJECT_ROOT / "tests")))
    n = 60
    procs = [subprocess.Popen([sys.executable, str(script), str(data), str(model_dir), str(w), str(n)],
                              stderr=subprocess.PIPE, text=True) for w in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert watcher.store.count_items() == 4 * n
    if backend == "milvus-lite":  # one process per Milvus Lite file: the writers left the index to the watcher
        assert watcher.index is not None
        watcher.refresh()
    # the index as saved holds exactly the store's items
    idx = watcher._load_index()
    rec = json.loads(watcher._index_path().with_suffix(".json").read_text())
    assert idx.ids().tolist() == store_ids(watcher)
    assert (rec["count"], rec["checksum"]) == ids_checksum(store_ids(watcher))
    # the long-running engine sees every item without a restart
    hits, _ = watcher.search(text="perro", k=1000)
    assert len(hits) == 4 * n and len({h.item_id for h in hits}) == 4 * n
    # and a fresh one too
    assert Engine(data, model_dir=model_dir).index.ids().tolist() == store_ids(watcher)


def test_an_image_added_three_times_is_one_item_and_one_entry(model_dir, tmp_path, backend):
    eng = Engine(tmp_path / "data", model_dir=model_dir)
    a = word_png("agua")
    rep = eng.add("c", [("a.png", a), ("a.png", a), ("a.png", a), ("b.png", word_png("luna"))])
    assert len(rep.added) == 2 and eng.store.count_items() == 2 and len(eng.index) == 2
    hits, _ = eng.search(text="agua", k=10)
    assert len(hits) == 2 and len({h.item_id for h in hits}) == 2


def test_other_processes_removals_are_seen(model_dir, tmp_path, backend):
    a = Engine(tmp_path / "data", model_dir=model_dir)
    b = Engine(tmp_path / "data", model_dir=model_dir)
    ids = a.add("c", [(f"{i}", word_png(f"w{i}", i)) for i in range(6)]).added
    b.remove(ids[:2])
    hits, _ = a.search(text="agua", k=50)
    assert sorted(h.item_id for h in hits) == sorted(ids[2:])


# ---------------------------------------------------------------- 6. bad inputs

@pytest.mark.parametrize("bad", [bomb_png(), np.zeros((40, 40, 5), np.uint8), None, 7, 3.5, object(),
                                 np.array([["a", "b"], ["c", "d"]]), b"", "\0"])
def test_bad_inputs_are_one_line_errors_and_good_ones_are_added(model_dir, tmp_path, bad):
    eng = Engine(tmp_path / "data", model_dir=model_dir)
    good = [(f"g{i}.png", word_png(f"g{i}", i)) for i in range(3)]
    rep = eng.add("c", good[:2] + [("bad", bad)] + good[2:])
    assert len(rep.added) == 3 and list(rep.errors) == ["bad"] and "\n" not in rep.errors["bad"]
    with pytest.raises(ValueError):
        eng.search(image=bad)


def test_cli_add_keeps_the_good_images_of_a_batch_with_a_bomb(model_dir, tmp_path, capsys):
    files = []
    for i in range(20):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(word_png(f"w{i}", i))
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    args = ["add", "c", *map(str, files), str(tmp_path / "bomb.png"), "--data", str(tmp_path / "d"),
            "--model", str(model_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "added 20 images" in out and "bomb.png" in out and "too large" in out


def test_a_faint_word_with_one_dark_pixel_is_not_blank():
    from xmr_core.data.preprocess import word_ink

    img = Image.new("L", (200, 60), 255)
    ImageDraw.Draw(img).text((10, 10), "faint", fill=205, font_size=30)  # pencil-light writing
    plain = word_ink(png(img))
    img.putpixel((190, 5), 0)  # one near-black speck
    specked = word_ink(png(img))  # refused as blank before: the speck set the scale of all the ink
    assert (specked > 0.5).sum() >= 0.9 * (plain > 0.5).sum() > 50


# ---------------------------------------------------------------- 8. damaged files

def test_a_garbled_index_is_rebuilt(model_dir, tmp_path, backend):
    eng = Engine(tmp_path / "data", model_dir=model_dir)
    eng.add("c", [(f"{i}", word_png(f"w{i}", i)) for i in range(20)])
    path = eng._index_path()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 256] = b"\x7f" * 256
    path.write_bytes(bytes(raw))
    again = Engine(tmp_path / "data", model_dir=model_dir)
    hits, _ = again.search(text="agua", k=50)
    assert len(hits) == 20 and max(h.score for h in hits) <= 1.01
    rep = check(tmp_path / "data")
    assert rep.healthy, rep.problems


def test_a_damaged_store_says_how_to_recover_and_doctor_restores_it(tmp_path, capsys):
    s = Store(tmp_path / "d")
    s.create_collection("letters")
    s.backup()
    s.create_collection("later")  # after the backup: lost by a restore, as a backup is a point in time
    s.close()  # damage at rest: no connection holds the file's pages
    with open(s.db_path, "r+b") as f:
        f.write(b"garbage!" * 16)
    with pytest.raises(StoreDamaged, match="xmr doctor .*--restore"):
        Store(tmp_path / "d")
    assert main(["doctor", "--data", str(tmp_path / "d")]) == 1
    assert "damaged" in capsys.readouterr().out
    assert main(["doctor", "--data", str(tmp_path / "d"), "--restore"]) == 0
    assert [c["name"] for c in Store(tmp_path / "d").list_collections()] == ["letters"]
    assert list((tmp_path / "d").glob("store.sqlite.damaged-*"))  # the damaged file is kept aside


def test_a_backup_is_taken_daily_and_before_a_migration(tmp_path, monkeypatch):
    import xmr_core.store.database as store_mod

    s = Store(tmp_path / "d")
    assert len(s.list_backups()) == 1  # the first start of the day
    Store(tmp_path / "d")
    assert len(s.list_backups()) == 1
    now = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", now + 1)
    monkeypatch.setitem(store_mod.MIGRATIONS, now + 1, "CREATE TABLE extra (x INTEGER)")
    Store(tmp_path / "d")
    assert any(f"schema{now}" in p.name for p in s.list_backups())
    for _ in range(8):
        s.backup()
    assert len(s.list_backups()) == store_mod.BACKUPS_KEPT


def test_doctor_finds_missing_files_and_removes_orphans(model_dir, tmp_path):
    eng = Engine(tmp_path / "data", model_dir=model_dir)
    ids = eng.add("c", [(f"{i}", word_png(f"w{i}", i)) for i in range(4)]).added
    lost = eng.store.get_items([ids[0]])[ids[0]].path
    lost.unlink()
    sha, orphan = eng.store.put_image(b"left by a killed add", ".png")
    rep = check(tmp_path / "data")
    assert rep.missing == [ids[0]] and rep.orphans == [orphan.as_posix()] and not rep.healthy
    hits, _ = eng.search(text="agua", k=10)
    assert [h.missing for h in hits if h.item_id == ids[0]] == [True]
    check(tmp_path / "data", fix=True, grace_s=0)
    assert not (tmp_path / "data" / orphan).exists()
    assert all(it.path.exists() for it in eng.store.list_items() if it.id != ids[0])  # nothing else touched


# ---------------------------------------------------------------- 1. model names, 4. promote

@pytest.mark.parametrize("name", ["/tmp/elsewhere", "..", ".", "../x", "a/b", "", " ", "x" * 65, "~root"])
def test_a_model_name_is_a_slug(tmp_path, name):
    store = Store(tmp_path / "d")
    with pytest.raises(ValueError, match="model name"):
        start_job(store, "finetune", {"base": "x", "name": name})
    assert store.list_jobs() == []


def test_a_forged_job_writes_nothing_outside_and_discard_deletes_nothing_outside(tmp_path):
    store = Store(tmp_path / "d")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    job = store.create_job("finetune", {"base": "x", "name": str(victim)})  # parameters forged in the store
    run_job(store.root, job)
    assert store.get_job(job)["status"] == "failed" and "model name" in store.get_job(job)["message"]
    for target in (victim, victim / "model", tmp_path / "d", tmp_path / "d" / "models", tmp_path / "d" / "models/../.."):
        with pytest.raises(ValueError):
            discard_model(store, target)
    assert (victim / "precious.txt").read_text() == "keep me" and (tmp_path / "d" / "store.sqlite").exists()
    inside = new_model_dir(store, "finetune-1")
    (inside / "model").mkdir(parents=True)
    assert discard_model(store, inside / "model") == inside and not inside.exists()


def test_a_model_holding_a_user_concept_loads(model_dir, lexicon, tmp_path):
    """Promote of a model fine-tuned on a user concept: its lexicon and the store both hold it."""
    eng = Engine(tmp_path / "data", model_dir=model_dir)
    eng.store.add_concept("user.kite", "风筝", "kite", "cometa")
    lex = Lexicon(lexicon.concepts[:40]).with_concepts([Concept("user.kite", "风筝", "kite", "cometa", "user")])
    tuned = save_model_dir(DualEncoder(SMALL).eval(), lex, tmp_path / "data" / "models" / "ft" / "model")
    again = Engine(tmp_path / "data", model_dir=tuned)
    assert again.lexicon.ids().count("user.kite") == 1


# ---------------------------------------------------------------- 9. filtered search, 10. unknown collections

def test_filtered_search_is_exact_and_follows_the_store(model_dir, tmp_path, backend):
    eng = Engine(tmp_path / "data", model_dir=model_dir)
    a = eng.add("a", [(f"{i}", word_png(f"a{i}", i)) for i in range(5)]).added
    eng.add("b", [(f"{i}", word_png(f"b{i}", 50 + i)) for i in range(5)])
    assert {h.item_id for h in eng.search(text="agua", k=50, collection="a")[0]} == set(a)
    more = Engine(tmp_path / "data", model_dir=model_dir).add("a", [("new", word_png("nuevo", 99))]).added
    assert {h.item_id for h in eng.search(text="agua", k=50, collection="a")[0]} == set(a + more)


def test_an_unknown_collection_is_an_error_that_lists_them(model_dir, tmp_path, capsys):
    eng = Engine(tmp_path / "data", model_dir=model_dir)
    eng.add("letters", [("x", word_png("x"))])
    with pytest.raises(ValueError, match="no collection named 'demo'.*letters.*xmr demo"):
        eng.search(text="perro", collection="demo")
    code = main(["search", "no_such_collection", "--text", "perro", "--data", str(tmp_path / "data"),
                 "--model", str(model_dir)])
    assert code == 2 and "letters" in capsys.readouterr().err


def test_a_writer_killed_mid_add_leaves_a_consistent_folder(model_dir, tmp_path, backend):
    """SIGKILL while adding: the next engine's index is exact and doctor clears what the add left."""
    import signal
    import time

    data = tmp_path / "data"
    Engine(data, model_dir=model_dir)
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(PROJECT_ROOT / "tests")))
    p = subprocess.Popen([sys.executable, str(script), str(data), str(model_dir), "7", "400"])
    store = Store(data)
    deadline = time.time() + 300
    while store.count_items() < 20 and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert store.integrity() == "ok"
    eng = Engine(data, model_dir=model_dir)
    assert eng.index.ids().tolist() == store_ids(eng) and len(store_ids(eng)) >= 20
    check(data, fix=True, grace_s=0)
    rep = check(data)
    assert rep.healthy and not rep.orphans, rep.problems


def test_an_unlabelled_item_gets_the_script_it_is_written_in(model_dir, lexicon, tmp_path, fonts_ready):
    """Before: the language whose anchor scored highest, which the model makes alike for all three."""
    from xmr_core.data.render import SyntheticWords

    eng = Engine(tmp_path / "data", model_dir=model_dir)
    ds = SyntheticWords(Lexicon(lexicon.concepts[:40]), "val", kinds={"font": 1.0}, seed=8)
    samples = [ds[i] for i in range(0, 60, 2)]  # all three scripts
    ids = eng.add("c", [(f"{i}", png(s.image)) for i, s in enumerate(samples)]).added
    items = eng.store.get_items(ids)
    right = sum(items[i].lang == s.lang for i, s in zip(ids, samples))
    assert right >= 0.9 * len(samples)


def test_a_schema_1_store_upgrades_and_keeps_its_items(tmp_path, monkeypatch):
    """Stores made before readings were kept gain the readings tables (their text index, the index that
    finds short readings); their items stay, listed as lacking a reading until a reindex reads them."""
    import numpy as np

    import xmr_core.store.database as store_mod

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 1)
    old = Store(tmp_path / "d")
    old.create_collection("c")
    ids = old.add_items("c", [{"sha256": "a" * 64, "path": "x.png"}], "m", np.ones((1, 4), np.float32))
    monkeypatch.undo()
    new = Store(tmp_path / "d")
    assert new.schema_version() == store_mod.SCHEMA_VERSION and [it.id for it in new.items_missing_reading("m")] == ids
    new.set_readings("m", [(ids[0], ("kite", b"\0\0\0"))])
    assert new.reading_candidates("m", ["kite"]) == ids and not new.items_missing_reading("m")
    new.set_readings("m", [(ids[0], ("ox", b"\0\0\0"))])
    assert new.reading_candidates("m", ["ox"]) == ids
    assert new.read("SELECT 1 FROM sqlite_master WHERE name='readings_text'")


def test_readings_of_an_older_format_count_as_missing(tmp_path, monkeypatch):
    """A schema 4 store's readings hold no other listed words (format 1): after the upgrade their items are
    listed for a reindex to read again; a reading written now is of the current format."""
    import numpy as np

    import xmr_core.store.database as store_mod
    from xmr_core.store.readings import READING_FORMAT

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 4)
    old = Store(tmp_path / "d")
    old.create_collection("c")
    ids = old.add_items("c", [{"sha256": c * 64, "path": f"{c}.png"} for c in "ab"], "m", np.ones((2, 4), np.float32))
    with old.tx() as db:  # as the code of schema 4 wrote them
        for i in ids:
            db.execute("INSERT INTO readings (item_id, model_id, text, han, compact) VALUES (?, 'm', 'kite', '', ?)",
                       (i, b"\0\0\0"))
    monkeypatch.undo()
    new = Store(tmp_path / "d")
    assert [it.id for it in new.items_missing_reading("m")] == ids
    assert new.reading_candidates("m", ["kite"]) == ids  # still searchable until then
    assert any("2 readings were made before" in n and "xmr reindex" in n for n in check(tmp_path / "d").notes)
    new.set_readings("m", [(ids[0], ("kite · kites", b"\0\0\0"))])
    assert [it.id for it in new.items_missing_reading("m")] == ids[1:]
    assert new.read("SELECT format FROM readings WHERE item_id=?", (ids[0],))[0]["format"] == READING_FORMAT
    assert any("1 reading was made before" in n for n in check(tmp_path / "d").notes)
