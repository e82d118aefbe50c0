"""The package map of docs/architecture.md holds: which folder may import which, a library without UI code,
pages without the heavy libraries, a small top level, short modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xmr_core"
# folder -> the folders it may import (docs/architecture.md)
MAY_IMPORT = {
    "data": set(),
    "model": {"data"},
    "evaluate": {"data", "model"},
    "store": {"data"},
    "train": {"data", "model", "evaluate", "store"},
    "search": {"data", "model", "evaluate", "store", "train"},
    "cli": {"data", "model", "evaluate", "store", "train", "search"},
}
NOT_IN_PAGES = {"torch", "faiss", "timm", "onnxruntime", "sqlite3"}
MAX_LINES = 420


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, those inside functions too; relative ones resolved."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    here = list(rel[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.append((node.lineno, mod))
            if node.module is None or node.level:  # `from . import x`: x may be a module
                out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def folder(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def test_the_rules_see_imports():
    """The parser the rules rest on finds absolute, relative and function-level imports."""
    got = {m for _, m in imported(PACKAGE / "search" / "engine.py")}
    assert {"xmr_core.store.database", "xmr_core.model.checkpoint", "torch"} <= got
    got = {m for _, m in imported(PACKAGE / "search" / "reading.py")}
    assert "xmr_core.model.reader" in got  # imported inside a method


def test_every_module_lives_in_a_mapped_folder():
    top = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(top) <= 8, top
    for p in modules():
        if p.parent != PACKAGE:
            assert folder(p) in MAY_IMPORT, f"{p.relative_to(ROOT)} is in a folder docs/architecture.md does not map"


@pytest.mark.parametrize("name", sorted(MAY_IMPORT))
def test_lower_layers_never_import_higher_ones(name):
    bad = []
    for p in modules():
        if p.parent == PACKAGE or folder(p) != name:
            continue
        for line, mod in imported(p):
            parts = mod.split(".")
            if parts[0] == "xmr_core" and len(parts) > 1 and parts[1] != name and parts[1] in MAY_IMPORT \
                    and parts[1] not in MAY_IMPORT[name]:
                bad.append(f"{p.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_library_has_no_ui_and_the_pages_no_heavy_libraries():
    ui = [f"{p.relative_to(ROOT)}:{line}" for p in modules() for line, mod in imported(p)
          if mod.split(".")[0] == "streamlit"]
    assert not ui, ui
    pages = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    heavy = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for p in pages for line, mod in imported(p)
             if mod.split(".")[0] in NOT_IN_PAGES]
    assert not heavy, heavy
    assert len(pages) > 3  # the pages were found


def test_modules_stay_short():
    long = {str(p.relative_to(ROOT)): n for p in modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
