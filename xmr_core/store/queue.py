"""The store's user concepts, annotation queue and jobs."""

from __future__ import annotations

import json
import time


class QueueTables:
    """User concepts, the annotation queue and the jobs table (a part of Store)."""

    # ------------------------------------------------------------------ user concepts and annotations
    def add_concept(self, concept_id: str, zh: str, en: str, es: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO concepts VALUES (?, ?, ?, ?, ?)", (concept_id, zh, en, es, time.time()))

    def list_concepts(self) -> list[dict]:
        return [dict(r) for r in self.read("SELECT * FROM concepts ORDER BY created")]

    def annotate(self, sha256: str, path: str, concept_id: str, lang: str, author: str = "") -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO annotations (sha256, path, concept_id, lang, author, created) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (sha256, path, concept_id, lang, author, time.time()))
            return int(cur.lastrowid)

    def list_annotations(self, status: str | None = "queued") -> list[dict]:
        where, args = ("WHERE status=?", (status,)) if status else ("", ())
        return [dict(r) for r in self.read(f"SELECT * FROM annotations {where} ORDER BY id", args)]

    def relabel_annotation(self, ann_id: int, concept_id: str, lang: str) -> None:
        with self.tx() as db:
            if db.execute("UPDATE annotations SET concept_id=?, lang=? WHERE id=?",
                          (concept_id, lang, ann_id)).rowcount == 0:
                raise ValueError(f"no annotation {ann_id}")

    def delete_annotation(self, ann_id: int) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM annotations WHERE id=?", (ann_id,))

    # ------------------------------------------------------------------ jobs
    def create_job(self, kind: str, params: dict) -> int:
        """A new queued job; refused while another job is queued or running (one at a time)."""
        with self.tx() as db:
            busy = db.execute("SELECT id, kind FROM jobs WHERE status IN ('queued', 'running')").fetchone()
            if busy:
                raise RuntimeError(f"job {busy['id']} ({busy['kind']}) is still running; wait for it to finish")
            cur = db.execute("INSERT INTO jobs (kind, params, status, created) VALUES (?, ?, 'queued', ?)",
                             (kind, json.dumps(params), time.time()))
            return int(cur.lastrowid)

    def update_job(self, job_id: int, **fields) -> None:
        allowed = {"status", "progress", "message", "result", "pid", "started", "finished"}
        if not set(fields) <= allowed:
            raise ValueError(f"unknown job fields {set(fields) - allowed}")
        if "result" in fields and not isinstance(fields["result"], str):
            fields["result"] = json.dumps(fields["result"])
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*fields.values(), job_id))

    def get_job(self, job_id: int) -> dict:
        rows = self.read("SELECT * FROM jobs WHERE id=?", (job_id,))
        if not rows:
            raise ValueError(f"no job {job_id}")
        d = dict(rows[0])
        d["params"], d["result"] = json.loads(d["params"]), json.loads(d["result"])
        return d

    def list_jobs(self, limit: int = 20) -> list[dict]:
        return [self.get_job(r["id"]) for r in self.read("SELECT id FROM jobs ORDER BY id DESC LIMIT ?", (limit,))]
