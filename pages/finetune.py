"""Fine-tune: train on the annotation queue in a separate process; compare; promote or discard."""

from collections import Counter

import streamlit as st

from pages._common import LANG_NAMES, engine_or_stop, routed
from xmr_core.search.jobs import discard_job, job_actions, promote_job, refresh_dead_jobs, start_job
from xmr_core.store.registry import model_name

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
    c1, c2, c3 = st.columns([2, 1, 1])
    name = c1.text_input("Name of the new model", value=f"finetune-{len(eng.store.list_jobs(1000)) + 1}",
                         key="finetune_name")
    steps = c2.number_input("Steps", min_value=5, max_value=5000, value=300, step=50, key="finetune_steps",
                            help="Of the reading head (a reader model) or of the visual encoder (an edge model).")
    trunk_steps = c3.number_input("Reader steps", min_value=0, max_value=2000, value=60, step=10,
                                  key="finetune_trunk_steps",
                                  help="A reader model: the reading head is trained alone first; when that loses on the "
                                       "held-out fonts, the reader's own network is adapted to the queue's hand in this "
                                       "many steps (about 2 s each on 2 cores, with its setup) and a new head trained on "
                                       "it. 0 trains the reading head alone.")
    pools = {c["name"]: c["unlabelled"] for c in eng.store.list_collections() if c["unlabelled"]} if eng.reads else {}
    pool = st.selectbox("Also learn from the unlabelled items of", [""] + list(pools), key="finetune_pool",
                        format_func=lambda c: f"{c} ({pools[c]} unlabelled items)" if c else "no collection (the queue alone)",
                        disabled=not pools,
                        help="Self-training, for a reader model: the model reads the collection's unlabelled items "
                             "(up to 600), and the half it reads most surely train beside the queue, labelled with "
                             "what it read. Worth it when the collection is in the queue's hand.")
    go = st.form_submit_button("Start fine-tuning", type="primary")
if go:
    if len(queue) < 2:
        st.session_state["finetune_flash"] = {"level": "error", "text": "The queue needs at least 2 labelled samples: "
                                              "annotate some first.", "while": None}
    else:
        try:
            job_id = start_job(eng.store, "finetune", {"base": str(eng.model_dir), "name": name.strip() or "finetune",
                                                       "config": {"steps": int(steps), "trunk_steps": int(trunk_steps),
                                                                  **({"self_train": pool} if pool else {})}})
            flash = {"level": "success", "text": f"Started job {job_id}: it runs on even if this page is closed.",
                     "while": ("latest", job_id)}
        except (RuntimeError, ValueError) as exc:
            busy = next((j for j in eng.store.list_jobs(5) if j["status"] in ("queued", "running")), None)
            flash = {"level": "error", "text": str(exc), "while": ("running", busy["id"]) if busy else None}
        st.session_state["finetune_flash"] = flash


def _why(res: dict) -> str:
    """Why a reader model's job did or did not adapt the reader (finetune.py trains the head alone first)."""
    if "head_alone" in res:
        return (f" The reading head alone scored {_pct(res['head_alone']['val_fonts']['within_acc@1'])}% on the "
                "held-out fonts, below the model it started from, so the reader was adapted too.")
    if res["trained"] == "reading head" and res.get("config", {}).get("trunk_steps"):
        return " The reading head alone did not lose on the held-out fonts, so the reader was left as it was."
    return ""


def _self_trained(res: dict) -> str:
    """What self-training added to a job's training set."""
    s = res.get("self_training")
    if not s:
        return ""
    return (f", {s['kept']} of the {s['read']} unlabelled items of {s['collection']!r} labelled with the model's "
            "own reading")


def _flash(jobs: list[dict]) -> None:
    """The outcome of the last action, shown while it is still true of the store: a start refused
    because job N runs, until N ends; a started, promoted or discarded job's line while it is the newest."""
    flash = st.session_state.get("finetune_flash")
    if not flash:
        return
    cond = flash["while"]
    if cond is not None:
        kind, job_id = cond
        job = next((j for j in jobs if j["id"] == job_id), None)
        if (job is None or (kind == "running" and job["status"] not in ("queued", "running"))
                or (kind == "latest" and jobs[0]["id"] != job_id)):
            st.session_state.pop("finetune_flash", None)
            return
    getattr(st, flash["level"])(flash["text"])


@st.fragment(run_every=2)
def job_panel() -> None:
    refresh_dead_jobs(eng.store)
    jobs = eng.store.list_jobs(5)
    _flash(jobs)
    if not jobs:
        st.info("No fine-tune job yet.")
        return
    job = jobs[0]
    st.subheader(f"Job {job['id']} · {job['kind']} · {job['status']}")
    if job["status"] in ("queued", "running"):
        st.progress(min(1.0, job["progress"]), text=job["message"] or job["status"])
    elif job["status"] == "failed":
        st.error(job["message"])
    elif job["message"] and job["message"] != "done":
        st.caption(job["message"])
    if job["kind"] == "finetune" and job["status"] in ("done", "promoted", "discarded") and job["result"]:
        res = job["result"]
        rows = []
        for part in res["before"]:
            for metric in ("within_acc@1", "cross_acc@1"):
                rows.append({"data": PARTS.get(part, part), "Acc@1 (%)": METRICS[metric],
                             "before": _pct(res["before"][part][metric]), "after": _pct(res["after"][part][metric])})
        st.table(rows)
        if "trained" in res:
            st.caption(f"Trained the {res['trained']} on {res['n_train']} queue samples" + _self_trained(res)
                       + (f" and {res['n_negatives']} hits marked wrong (as negatives)" if res.get("n_negatives") else "")
                       + f", {res['n_heldout']} held out; {res['minutes']:.1f} minutes." + _why(res))
    actions = job_actions(eng.store, job)
    if "promote" in actions:
        override = st.checkbox("Promote even if it is worse on the held-out fonts", key="finetune_override")
    b1, b2 = st.columns(2)
    if "promote" in actions and b1.button("Promote and re-index", key="finetune_promote", type="primary"):
        try:
            new, reindex = promote_job(eng.store, job["id"], override)
            st.cache_resource.clear()
            st.session_state["finetune_flash"] = {"level": "success", "while": ("latest", reindex),
                                                  "text": f"{model_name(new)} is active; re-indexing in the background."}
        except (ValueError, RuntimeError) as exc:
            st.session_state["finetune_flash"] = {"level": "error", "text": str(exc), "while": ("latest", job["id"])}
        st.rerun(scope="fragment")
    if "discard" in actions and b2.button("Discard", key="finetune_discard"):
        try:
            gone = discard_job(eng.store, job["id"])
            st.session_state["finetune_flash"] = {"level": "success", "text": f"Discarded {gone.name}.",
                                                  "while": ("latest", job["id"])}
        except (ValueError, OSError) as exc:
            st.session_state["finetune_flash"] = {"level": "error", "text": str(exc), "while": ("latest", job["id"])}
        st.rerun(scope="fragment")


job_panel()
