"""Models: the registry with each model's metrics and size; activate or roll back.

Works from the store alone, so a model that fails to load can always be rolled back here."""

import streamlit as st

from pages._common import get_engine, routed
from xmr_core.search.service import open_store
from xmr_core.store.registry import activate, active_model_dir, history, list_models, model_name, rollback

routed(__file__)
st.title("Models")
store = open_store()
models = list_models(store)
rows = []
for m in models:
    val = m["metrics"].get("val", {})
    path = "reader" if m["reads"] else m["metrics"].get("fast_path", {}).get("use") or "torch"
    fast = m["metrics"].get(f"val_{path}", val)  # the numbers of the path the engine runs
    rows.append({"name": m["name"], "active": "✅" if m["active"] else "", "id": m["id"], "size MB": m["size_mb"],
                 "inference": path,
                 "within Acc@1": round(100 * fast.get("within_acc@1", float("nan")), 2),
                 "cross Acc@1": round(100 * fast.get("cross_acc@1", float("nan")), 2),
                 "R/D": round(val.get("rd_ratio", {}).get("all", float("nan")), 3),
                 "latency ms": round(fast.get("latency_ms_p50", float("nan")), 2)})
st.dataframe(rows, hide_index=True)
active = next((m["name"] for m in models if m["active"]), model_name(active_model_dir(store)))
st.caption(f"Active: {active} (metrics on the held-out `val` fonts; "
           "latency is preprocess + embed of one image on one thread).")
others = [m for m in models if not m["active"]]
past = [p for p in history(store) if (p / "config.json").exists()]
c1, c2 = st.columns(2)
with c1:
    if others:
        choice = st.selectbox("Model", [m["name"] for m in others], key="models_choice")
        if st.button("Activate", key="models_activate"):
            activate(store, next(m["path"] for m in others if m["name"] == choice))
            get_engine.clear()
            st.session_state["models_flash"] = ("success", f"{choice} is active; the index is rebuilt for it on next use.")
            st.rerun()
with c2:
    if past:
        if st.button(f"Roll back to {model_name(past[-1])}", key="models_rollback"):
            try:
                st.session_state["models_flash"] = ("success", f"rolled back to {model_name(rollback(store))}")
                get_engine.clear()
            except ValueError as exc:
                st.session_state["models_flash"] = ("error", str(exc))
            st.rerun()
    else:
        st.caption("No earlier model to roll back to.")
if "models_flash" in st.session_state:  # the outcome of the click that led to this run
    level, text = st.session_state.pop("models_flash")
    getattr(st, level)(text)
