"""What every page shares: the one engine (cached, shared by all sessions) and result rendering."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from xmr_core.search.demo import demo_job
from xmr_core.search.jobs import refresh_dead_jobs
from xmr_core.search.service import load_engine, model_available
from xmr_core.store.readings import shown_reading
from xmr_core.store.users import ANONYMOUS, ensure_user, role

LANG_NAMES = {"zh": "Chinese", "en": "English", "es": "Spanish"}
ZWSP = "\u200b"


_START: dict = {}  # how far the engine's start has got (written by the loading thread, read by pages)


@st.cache_resource(show_spinner=False)
def get_engine():
    """The engine for the data folder (built once per server; a first start adds the demo collection)."""
    return load_engine(progress=lambda done, total, what: _START.update(done=done, total=total, what=what))


def engine_with_progress():
    """The engine; while it starts (the model, the store, the index and on a first start the demo's
    first concepts) every page that asks shows each step on a progress bar. The start runs in a thread
    so that this script can draw the bar: a cached function may not write to elements made outside it."""
    box: dict = {}

    def start() -> None:
        try:
            box["engine"] = get_engine()
        except Exception as exc:  # shown by the caller, as a start in this thread would be
            box["error"] = exc

    slot = st.empty()  # always made: the elements after it keep their places whether or not it shows
    worker = threading.Thread(target=start, daemon=True)
    worker.start()
    worker.join(0.5)
    if worker.is_alive():
        while worker.is_alive():
            total = max(_START.get("total", 1), 1)
            slot.progress(min(1.0, _START.get("done", 0) / total),
                          text=f"Starting: {_START.get('what', 'loading the model, the store and the index')} "
                               f"({_START.get('done', 0)}/{total})")
            worker.join(0.25)
        slot.empty()
    if "error" in box:
        raise box["error"]
    return box["engine"]


@st.fragment(run_every=3)
def demo_progress(store) -> None:
    """While the demo collection fills in the background: how far it is (search works meanwhile)."""
    refresh_dead_jobs(store)
    job = demo_job(store)
    if job is not None and job["status"] in ("queued", "running"):
        st.progress(min(1.0, job["progress"]), text=f"Building the demo collection in the background: "
                    f"{job['message'] or 'starting'}. Search works on what is there.")


def routed(page_file: str) -> None:
    """Send a page that runs without the router (a deep link before any session ran app.py) to
    app.py, which routes on to that page (a page passes its `__file__`) with the app's layout and sidebar."""
    if not st.session_state.get("xmr_routed"):
        if st.query_params.get("user") and not st.session_state.get("xmr_user"):  # switching pages clears them
            st.session_state["xmr_user"] = st.query_params["user"]
        st.session_state["xmr_goto"] = f"pages/{Path(page_file).name}"
        st.switch_page("app.py")


def user_box(store) -> str:
    """The sidebar's user name (kept in the address as ?user=, so a reload keeps it; the default is
    "anonymous"): whose searches, marks and annotations these are."""
    name = st.session_state.get("xmr_user") or st.query_params.get("user") or ANONYMOUS
    with st.sidebar:
        typed = st.text_input("User", value=name, key=f"xmr_user_box_{name}",
                              help="Your name on this app: your searches, marks and annotations are kept under it "
                                   "(no password: anyone may type any name).")
        try:
            name = ensure_user(store, typed)
        except ValueError as exc:
            st.error(str(exc))
            name = ensure_user(store, name) if name != typed else ANONYMOUS
        if role(store, name) == "reviewer":
            st.caption("Reviewer: may relabel and delete anyone's annotations.")
    st.session_state["xmr_user"] = name
    if st.query_params.get("user") != name:
        st.query_params["user"] = name
    return name


def current_user() -> str:
    return st.session_state.get("xmr_user") or ANONYMOUS


def engine_or_stop():
    """The engine, or a message saying why there is none and what to do (never a traceback)."""
    if not model_available():
        st.warning("No model is installed yet: the bundled models (assets/models/reader, assets/models/edge) are missing. "
                   "Train one with `xmr train --config configs/default.json --out runs/default`.")
        st.stop()
    try:
        eng = engine_with_progress()
        user_box(eng.store)
        return eng
    except Exception as exc:  # a bad model or a damaged store must not take every page down
        st.error(f"The search engine could not start: {type(exc).__name__}: {exc}")
        st.info("Open **Models** in the sidebar to roll back or activate another model; "
                "`xmr doctor` checks the data folder.")
        st.stop()


def drawing_image(objects: list[dict], width: int, height: int) -> np.ndarray:
    """RGBA pixels of a canvas's free-drawn strokes (fabric.js paths: M, L and Q commands in canvas
    coordinates), black on transparent as the canvas itself sends them."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    pen = ImageDraw.Draw(img)
    for obj in objects:
        pts, at = [], None
        for cmd in obj.get("path") or []:
            if cmd[0] in ("M", "L"):
                at = (float(cmd[1]), float(cmd[2]))
                pts.append(at)
            elif cmd[0] == "Q" and at is not None:
                (cx, cy), end = (float(cmd[1]), float(cmd[2])), (float(cmd[3]), float(cmd[4]))
                pts += [((1 - t) ** 2 * at[0] + 2 * (1 - t) * t * cx + t * t * end[0],
                         (1 - t) ** 2 * at[1] + 2 * (1 - t) * t * cy + t * t * end[1]) for t in np.linspace(0.1, 1, 8)]
                at = end
        w = max(1, round(float(obj.get("strokeWidth", 10))))
        if len(pts) > 1:
            pen.line(pts, fill=(0, 0, 0, 255), width=w, joint="curve")
        for x, y in pts[:1] + pts[-1:]:  # round caps
            pen.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=(0, 0, 0, 255))
    return np.asarray(img)


def md(text: str) -> str:
    """User text made safe to show inside markdown: shown as typed, never as links, images or formatting.
    Markdown syntax is backslash-escaped; bare URLs and e-mail addresses, which GitHub-flavoured markdown
    links after parsing, are broken with an invisible zero-width space."""
    out = "".join("\\" + ch if ch in "\\`*_{}[]<>()#+-.!|~$:" else ch for ch in str(text))
    for mark, broken in (("//", "/" + ZWSP + "/"), ("www", "w" + ZWSP + "ww"), ("@", ZWSP + "@")):
        out = out.replace(mark, broken)
    return out


def show_hits(hits, by_script: bool, columns: int = 5, details=None, marks: dict | None = None):
    """A grid of results: thumbnail, script, the concept's three words, score; with an engine as
    `details`, each opens larger with where it came from; with `marks` (item id -> marked right), each can
    be marked right or wrong: the (item id, right) clicked is returned."""
    clicked = None
    if not hits:
        st.info("No results in the chosen scripts.")
        return clicked
    groups = [(LANG_NAMES[lg], [h for h in hits if h.lang == lg]) for lg in LANG_NAMES] if by_script else [("", hits)]
    for title, group in groups:
        if by_script:
            st.subheader(f"{title} ({len(group)})")
            if not group:
                continue
        cols = st.columns(columns)
        for i, h in enumerate(group):
            with cols[i % columns]:
                if h.missing:
                    st.warning(f"Image file of item {h.item_id} is missing (run `xmr doctor`).")
                else:
                    st.image(str(h.path), width="stretch")
                words = " · ".join(md(w) for w in h.words.values()) if h.words else "unlabelled"
                st.caption(f"**{LANG_NAMES.get(h.lang or '', '?')}** · {words} · score {h.score:.3f}")
                if details is not None and st.button("Details", key=f"hit_open_{h.item_id}", type="tertiary", icon="🔍"):
                    hit_details(details, h)
                if marks is not None:
                    if h.item_id in marks:
                        st.caption("✅ marked right" if marks[h.item_id] else "marked wrong")
                    else:
                        right, wrong = st.columns(2)
                        if right.button("Right", key=f"hit_right_{h.item_id}", type="tertiary", icon="👍"):
                            clicked = (h.item_id, True)
                        if wrong.button("Wrong", key=f"hit_wrong_{h.item_id}", type="tertiary", icon="👎"):
                            clicked = (h.item_id, False)
    return clicked


@st.dialog("Result", width="large")
def hit_details(eng, h) -> None:
    """One hit, larger, with its source, collection, reading and the page it was cut from."""
    if not h.missing:
        img = Image.open(h.path)
        f = min(640 / img.width, 240 / img.height)
        st.image(img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.LANCZOS))
    words = " / ".join(md(w) for w in h.words.values()) if h.words else "unlabelled"
    reading = eng.store.readings(eng.model_id, [h.item_id]).get(h.item_id)
    st.markdown(f"**{words}** · {LANG_NAMES.get(h.lang or '', 'script unknown')} · score {h.score:.3f}")
    st.markdown(f"Item {h.item_id} · collection **{md(h.collection)}** · source {md(h.source) or 'unknown'}"
                + (f" · read as **{md(shown_reading(reading[0]))}**" if reading and reading[0] else ""))
    if h.page_sha256:
        st.image(eng.page_with_box(h), caption=f"on its page, box {h.bbox}")
