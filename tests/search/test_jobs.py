"""Fine-tuning as a separate job process, followed through the store."""

import json
import time
from pathlib import Path

import pytest
import torch
from helpers import SMALL
from helpers import png as _png

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.render import SyntheticWords
from xmr_core.model.checkpoint import load_model_dir, save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.search.annotate import save_annotation
from xmr_core.search.engine import Engine
from xmr_core.search.jobs import refresh_dead_jobs, start_job
from xmr_core.train.finetune import split_queue


def _wait(store, job_id, timeout=600):
    t = time.time()
    while time.time() - t < timeout:
        job = store.get_job(job_id)
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise TimeoutError(store.get_job(job_id))


def test_split_queue_keeps_every_concept_in_training():
    rows = [{"concept_id": c, "id": i} for i, c in enumerate("aaaaabbc")]
    train, held = split_queue(rows, 0.2)
    assert {r["concept_id"] for r in train} == {"a", "b", "c"} and len(held) >= 1
    assert not [r for r in held if r["concept_id"] == "c"]  # a single sample stays in training
    train, held = split_queue([{"concept_id": "a", "id": 0}, {"concept_id": "a", "id": 1}], 0.2)
    assert len(train) == 1 and len(held) == 1  # a small queue still has a held-out sample to compare on
    train, held = split_queue([{"concept_id": "a", "id": 0}, {"concept_id": "b", "id": 1}], 0.2)
    assert len(train) == 2 and not held  # nothing can be held out without starving a concept


@pytest.mark.slow
def test_finetune_job_runs_to_the_end(lexicon, fonts_ready, tmp_path):
    torch.manual_seed(0)
    lex = Lexicon(lexicon.concepts[:12])
    base = save_model_dir(DualEncoder(SMALL).eval(), lex, tmp_path / "base")
    eng = Engine(tmp_path / "data", model_dir=base)
    ds = SyntheticWords(lex, "train", seed=4)
    for i in range(10):
        s = ds[i]
        save_annotation(eng, _png(s.image), s.concept_id, s.lang)
    job = start_job(eng.store, "finetune", {"base": str(base), "name": "ft1",
                                            "config": {"steps": 8, "val_concepts": 4, "concepts_per_batch": 4}})
    with pytest.raises(RuntimeError, match="still running"):
        start_job(eng.store, "reindex", {})
    done = _wait(eng.store, job)
    assert done["status"] == "done", done["message"]
    res = done["result"]
    assert set(res["before"]) == set(res["after"]) == {"val_fonts", "queue_heldout"}
    assert res["n_train"] + res["n_heldout"] == 10
    model, mlex, _ = load_model_dir(res["model_dir"])
    assert mlex.hash() == lex.hash()
    fast = json.loads((Path(res["model_dir"]) / "metrics.json").read_text())["fast_path"]
    assert fast["onnx-fp32"]["min_cosine"] > 0.9999 and (Path(res["model_dir"]) / "visual.onnx").exists()
    assert fast["use"] in ("onnx-fp32", None)  # whichever was faster on this machine
    # the job's process has ended; a reindex job may start now
    job2 = start_job(eng.store, "reindex", {"model": res["model_dir"]})
    assert _wait(eng.store, job2)["status"] == "done"


def test_dead_job_is_marked_failed(tmp_path):
    from xmr_core.store.database import Store

    s = Store(tmp_path)
    j = s.create_job("reindex", {})
    s.update_job(j, status="running", pid=999_999)
    refresh_dead_jobs(s)
    assert s.get_job(j)["status"] == "failed"


def test_promotion_refuses_a_worse_model(tmp_path):
    from xmr_core.store.database import Store
    from xmr_core.store.registry import active_model_dir, promote

    s = Store(tmp_path / "d")
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    res = {"before": {"val_fonts": {"within_acc@1": 0.8}}, "after": {"val_fonts": {"within_acc@1": 0.7}},
           "model_dir": str(d)}
    with pytest.raises(ValueError, match="worse"):
        promote(s, res)
    bits = {k: {"within_acc@1": v, "within_top1": "1" * int(v * 10) + "0" * (10 - int(v * 10))}
            for k, v in (("before", 0.8), ("after", 0.7))}
    with pytest.raises(ValueError, match="lost 1 of the check's renders and gained 0"):
        promote(s, {**res, **{k: {"val_fonts": v} for k, v in bits.items()}})  # 10 points lower: held back
    assert promote(s, res, override=True) == d and active_model_dir(s) == d.resolve()


def test_the_guard_lets_through_a_drop_that_is_noise_and_nothing_more():
    """A drop of one render in 600 held back every job that adapted the reader (session 32): the guard now
    holds back a drop of more than a point, or one where the renders lost outnumber those gained beyond
    chance (a one-sided sign test)."""
    from xmr_core.store.registry import sign_test_p, worse_on_fonts

    def fonts(bits: str) -> dict:
        return {"val_fonts": {"within_acc@1": bits.count("1") / len(bits), "within_top1": bits}}

    base = "1" * 580 + "0" * 20
    one_lost = "0" + "1" * 579 + "0" * 20
    assert not worse_on_fonts(fonts(base), fonts(one_lost))  # 1 lost, 0 gained: p = 0.5
    churn = "0" * 6 + "1" * 574 + "1" * 3 + "0" * 17  # 6 lost, 3 gained: p = 0.25
    assert not worse_on_fonts(fonts(base), fonts(churn))
    many = "0" * 8 + "1" * 572 + "0" * 20  # 8 lost, none gained: p = 0.004
    assert worse_on_fonts(fonts(base), fonts(many))
    wide = "0" * 30 + "1" * 550 + "1" * 20  # 30 lost, 20 gained: p = 0.10, but 1.7 points lower
    assert worse_on_fonts(fonts(base), fonts(wide))
    assert not worse_on_fonts(fonts(base), fonts(base)) and not worse_on_fonts(fonts(one_lost), fonts(base))
    strict = {"val_fonts": {"within_acc@1": fonts(one_lost)["val_fonts"]["within_acc@1"]}}  # no per-render record
    assert worse_on_fonts(fonts(base), strict)
    assert sign_test_p(1, 1) == 0.5 and abs(sign_test_p(8, 8) - 1 / 256) < 1e-12 and sign_test_p(0, 0) == 1.0


def test_roll_back_walks_back_through_the_models_activated(tmp_path):
    """Before: a second Roll back switched back to the model the first one left."""
    from xmr_core.store.database import Store
    from xmr_core.store.registry import DEFAULT_MODEL, activate, active_model_dir, rollback

    s = Store(tmp_path / "d")
    a, b = (tmp_path / n for n in "ab")
    for d in (a, b):
        d.mkdir()
        (d / "config.json").write_text("{}")
    activate(s, a)
    activate(s, b)
    assert rollback(s) == a.resolve() and active_model_dir(s) == a.resolve()
    assert rollback(s).resolve() == DEFAULT_MODEL.resolve()
    with pytest.raises(ValueError, match="no earlier model"):
        rollback(s)
    assert active_model_dir(s).resolve() == DEFAULT_MODEL.resolve()


def test_a_finished_finetune_is_promoted_or_discarded_once(lexicon, tmp_path):
    """Before: finished, promoted and discarded jobs all kept Promote and Discard."""
    from xmr_core.search.jobs import discard_job, job_actions, promote_job
    from xmr_core.store.registry import active_model_dir

    lex = Lexicon(lexicon.concepts[:5])
    eng = Engine(tmp_path / "data", model_dir=save_model_dir(DualEncoder(SMALL).eval(), lex, tmp_path / "base"))
    store = eng.store
    jobs = []
    for name in ("one", "two"):
        model = save_model_dir(DualEncoder(SMALL).eval(), lex, store.root / "models" / name / "model")
        j = store.create_job("finetune", {"name": name})
        store.update_job(j, status="done", result={"model_dir": str(model), "before": {"val_fonts": {"within_acc@1": 0.5}},
                                                    "after": {"val_fonts": {"within_acc@1": 0.6}}})
        jobs.append((j, model))
    (j1, m1), (j2, m2) = jobs
    assert job_actions(store, store.get_job(j1)) == ["promote", "discard"]
    new, reindex = promote_job(store, j1)
    assert new == m1 and active_model_dir(store) == m1.resolve()
    assert store.get_job(j1)["status"] == "promoted" and job_actions(store, store.get_job(j1)) == []
    with pytest.raises(ValueError, match="cannot be promoted"):
        promote_job(store, j1)
    assert _wait(store, reindex)["status"] == "done"
    assert discard_job(store, j2).name == "two" and not m2.exists()
    assert store.get_job(j2)["status"] == "discarded" and job_actions(store, store.get_job(j2)) == []
    running = store.create_job("finetune", {"name": "three"})
    assert job_actions(store, store.get_job(running)) == []
