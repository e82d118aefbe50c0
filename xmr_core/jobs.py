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

from .registry import new_model_dir
from .store import Store

log = logging.getLogger(__name__)
KINDS = ("finetune", "reindex")


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
        proc = subprocess.Popen([sys.executable, "-m", "xmr_core.jobs", str(store.root), str(job_id)],
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


def run_job(root: Path | str, job_id: int) -> None:
    """The job process: read parameters from the store, do the work, report progress and the result."""
    store = Store(root)
    job = store.get_job(job_id)
    store.update_job(job_id, status="running", started=time.time(), pid=os.getpid())

    def progress(fraction: float, message: str) -> None:
        store.update_job(job_id, progress=round(float(fraction), 4), message=message[:300])

    try:
        if job["kind"] == "finetune":
            from .finetune import FinetuneConfig, finetune

            p = job["params"]
            out = new_model_dir(store, p["name"])  # the parameters come from the store: checked again
            result = finetune(store, p["base"], out, FinetuneConfig.from_dict(p.get("config", {})), progress)
        else:
            from .engine import Engine

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
