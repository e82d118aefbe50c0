"""Fine-tune: train on the annotation queue in a separate process; compare; promote or discard."""

from collections import Counter

import streamlit as st

from pages._common import LANG_NAMES, engine_or_stop, routed
from xmr_core.jobs import refresh_dead_jobs, start_job
from xmr_core.registry import discard_model, promote

PARTS = {"val_fonts": "held-out fonts", "queue_heldout": "held-out part of the queue"}
METRICS = {"within_acc@1": "within a script", "cross_acc@1": "across scripts"}


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}"  # NaN: no sample of that kind


routed(__file__)
st.title("Fine-tune")
eng = engine_or_stop()
queue = eng.store.list_annotations()
counts = Counter((a["concept_id"], a["lang"]) for a in queue)
st.caption(f"{len(queue)} samples in the queue, {len({c for c, _ in counts})} concepts")
if counts:
    table = {}
    for (c, lg), n in counts.items():
        table.setdefault(c, {"concept": " / ".join(eng.lexicon.get(c).word(x) for x in LANG_NAMES)} |
                         {LANG_NAMES[x]: 0 for x in LANG_NAMES})[LANG_NAMES[lg]] = n
    st.dataframe(list(table.values()), hide_index=True)

with st.form("finetune_form"):
    c1, c2 = st.columns(2)
    name = c1.text_input("Name of the new model", value=f"finetune-{len(eng.store.list_jobs(1000)) + 1}",
                         key="finetune_name")
    steps = c2.number_input("Steps", min_value=5, max_value=5000, value=300, step=50, key="finetune_steps")
    go = st.form_submit_button("Start fine-tuning", type="primary")
if go:
    if len(queue) < 2:
        st.error("The queue needs at least 2 labelled samples: annotate some first.")
    else:
        try:
            start_job(eng.store, "finetune", {"base": str(eng.model_dir), "name": name.strip() or "finetune",
                                              "config": {"steps": int(steps)}})
            st.success("Started: the job runs on even if this page is closed.")
        except (RuntimeError, ValueError) as exc:
            st.error(str(exc))


@st.fragment(run_every=2)
def job_panel() -> None:
    refresh_dead_jobs(eng.store)
    jobs = eng.store.list_jobs(1)
    if not jobs:
        st.info("No fine-tune job yet.")
        return
    job = jobs[0]
    st.subheader(f"Job {job['id']} · {job['kind']} · {job['status']}")
    st.progress(min(1.0, job["progress"]), text=job["message"] or job["status"])
    if job["status"] == "failed":
        st.error(job["message"])
    if job["status"] == "done" and job["kind"] == "finetune":
        res = job["result"]
        rows = []
        for part in res["before"]:
            for metric in ("within_acc@1", "cross_acc@1"):
                rows.append({"data": PARTS.get(part, part), "Acc@1 (%)": METRICS[metric],
                             "before": _pct(res["before"][part][metric]), "after": _pct(res["after"][part][metric])})
        st.table(rows)
        override = st.checkbox("Promote even if it is worse on the held-out fonts", key="finetune_override")
        b1, b2 = st.columns(2)
        if b1.button("Promote and re-index", key="finetune_promote", type="primary"):
            try:
                new = promote(eng.store, res, override)
                start_job(eng.store, "reindex", {"model": str(new)})
                st.cache_resource.clear()
                st.success(f"{new.name} is active; re-indexing in the background.")
            except (ValueError, RuntimeError) as exc:
                st.error(str(exc))
        if b2.button("Discard", key="finetune_discard"):
            try:
                st.success(f"Discarded {discard_model(eng.store, res['model_dir']).name}.")
            except (ValueError, OSError) as exc:
                st.error(str(exc))


job_panel()
