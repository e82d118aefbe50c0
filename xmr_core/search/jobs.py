"""Long work (fine-tuning, re-indexing) in a separate process: parameters and progress live in the
store, so a job survives the browser closing and any page can follow it. One job at a time."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from xmr_core.store.database import Store
from xmr_core.store.registry import active_model_dir, discard_model, in_use, model_name, new_model_dir, promote

log = logging.getLogger(__name__)
KINDS = ("finetune", "reindex", "demo")


def start_job(store: Store, kind: str, params: dict) -> int:
    """Queue a job and start its process (detached); RuntimeError while another job runs."""
    if kind not in KINDS:
        raise ValueError(f"job kind {kind!r}: expected one of {KINDS}")
    if kind == "finetune":
        new_model_dir(store, params.get("name", ""))  # refuses a path or a taken name before anything runs
    refresh_dead_jobs(store)
    job_id = store.create_job(kind, params)
    logs = store.root / "jobs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{job_id}.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "xmr_core.search.jobs", str(store.root), str(job_id)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    store.update_job(job_id, pid=proc.pid)
    return job_id


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (finished, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def refresh_dead_jobs(store: Store) -> None:
    """Mark jobs whose process has died without finishing as failed (so the next one may start)."""
    for job in store.list_jobs(50):
        if job["status"] in ("queued", "running") and job["pid"] and not _alive(job["pid"]):
            store.update_job(job["id"], status="failed", message="the job's process ended unexpectedly",
                             finished=time.time())


def job_actions(store: Store, job: dict) -> list[str]:
    """What can be done with a job's result now, read from the store: a finished fine-tune whose model
    still exists and is not in use can be promoted or discarded; nothing else can."""
    if job["kind"] != "finetune" or job["status"] != "done":
        return []
    model = Path(job["result"].get("model_dir", ""))
    if not (model / "config.json").exists() or model.resolve() == active_model_dir(store).resolve():
        return []
    return ["promote"] if in_use(store, model) else ["promote", "discard"]


def promote_job(store: Store, job_id: int, override: bool = False) -> tuple[Path, int]:
    """Activate a finished fine-tune's model (registry.promote's guard applies), mark the job promoted
    and start re-indexing for the new model; the model and the re-index job."""
    job = store.get_job(job_id)
    if "promote" not in job_actions(store, job):
        raise ValueError(f"job {job_id} is {job['status']}: its model cannot be promoted")
    new = promote(store, job["result"], override)
    store.update_job(job_id, status="promoted", message=f"promoted: {model_name(new)}")
    return new, start_job(store, "reindex", {"model": str(new)})


def discard_job(store: Store, job_id: int) -> Path:
    """Delete a finished fine-tune's model and mark the job discarded."""
    job = store.get_job(job_id)
    if "discard" not in job_actions(store, job):
        raise ValueError(f"job {job_id} is {job['status']}: its model cannot be discarded")
    folder = discard_model(store, job["result"]["model_dir"])
    store.update_job(job_id, status="discarded", message=f"discarded: {folder.name}")
    return folder


def run_job(root: Path | str, job_id: int) -> None:
    """The job process: read parameters from the store, do the work, report progress and the result."""
    store = Store(root)
    job = store.get_job(job_id)
    store.update_job(job_id, status="running", started=time.time(), pid=os.getpid())

    def progress(fraction: float, message: str) -> None:
        store.update_job(job_id, progress=round(float(fraction), 4), message=message[:300])

    try:
        if job["kind"] == "finetune":
            from xmr_core.train.finetune import FinetuneConfig, finetune

            p = job["params"]
            out = new_model_dir(store, p["name"])  # the parameters come from the store: checked again
            result = finetune(store, p["base"], out, FinetuneConfig.from_dict(p.get("config", {})), progress)
        elif job["kind"] == "demo":
            from xmr_core.search.demo import build_demo
            from xmr_core.search.engine import Engine

            p = job["params"]
            progress(0.0, "demo collection: loading the model")
            n = build_demo(Engine(store.root), p.get("concepts"), start=p.get("start", 0),
                           progress=lambda d, t, w: progress(d / max(t, 1), f"{w} {d}/{t}"))
            result = {"images": n}
        else:
            from xmr_core.search.engine import Engine

            eng = Engine(store.root, model_dir=job["params"].get("model"),
                         progress=lambda d, t, w: progress(d / max(t, 1), f"{w} {d}/{t}"))
            result = {"items": eng.reindex(lambda d, t, w: progress(d / max(t, 1), f"{w} {d}/{t}"))}
        store.update_job(job_id, status="done", progress=1.0, message="done", result=result, finished=time.time())
    except Exception as exc:  # reported to the page; the traceback goes to the job's log
        traceback.print_exc()
        store.update_job(job_id, status="failed", message=f"{type(exc).__name__}: {exc}"[:300], finished=time.time())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run_job(sys.argv[1], int(sys.argv[2]))
