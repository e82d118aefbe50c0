"""Models: the registry with each model's metrics and size; activate or roll back."""

import streamlit as st

from pages._common import engine_or_stop, routed
from xmr_core.registry import activate, list_models, rollback

routed(__file__)
st.title("Models")
eng = engine_or_stop()
models = list_models(eng.store)
rows = []
for m in models:
    val = m["metrics"].get("val", {})
    path = m["metrics"].get("fast_path", {}).get("use") or "torch"
    fast = m["metrics"].get(f"val_{path}", val)  # the numbers of the path the engine runs
    rows.append({"name": m["name"], "active": "✅" if m["active"] else "", "id": m["id"], "size MB": m["size_mb"],
                 "inference": path,
                 "within Acc@1": round(100 * fast.get("within_acc@1", float("nan")), 2),
                 "cross Acc@1": round(100 * fast.get("cross_acc@1", float("nan")), 2),
                 "R/D": round(val.get("rd_ratio", {}).get("all", float("nan")), 3),
                 "latency ms": round(fast.get("latency_ms_p50", float("nan")), 2)})
st.dataframe(rows, hide_index=True)
st.caption(f"Active: {eng.model_dir.name}, inference path {eng.fast_path} (metrics on the held-out `val` fonts; "
           "latency is preprocess + embed of one image on one thread).")
names = [m["name"] for m in models]
choice = st.selectbox("Model", names, key="models_choice")
c1, c2 = st.columns(2)
if c1.button("Activate", key="models_activate"):
    activate(eng.store, next(m["path"] for m in models if m["name"] == choice))
    st.cache_resource.clear()
    st.success(f"{choice} is active; the index is rebuilt for it on next use.")
if c2.button("Roll back", key="models_rollback"):
    try:
        st.success(f"rolled back to {rollback(eng.store).name}")
        st.cache_resource.clear()
    except ValueError as exc:
        st.error(str(exc))
