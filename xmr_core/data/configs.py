"""Config dataclasses built strictly from JSON: an unknown key, a value of the wrong type or a removed
option set to anything but its off value raises ValueError naming the key and the valid ones. Every layer
has configs, so this sits in the lowest."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
                                       "dict": (dict,), "list": (list,), "tuple": (tuple, list)}


def strict_from_dict(cls: type[T], d: dict, what: str) -> T:
    """A config dataclass from a dict; ValueError naming any unknown key and the valid ones."""
    check_keys(cls, d, what)
    return cls(**d)


def check_keys(cls: type, d: dict, what: str) -> None:
    """ValueError unless `d` is a dict whose keys are all fields of the dataclass `cls` (naming the valid ones)."""
    if not isinstance(d, dict):
        raise ValueError(f"a {what} config is a JSON object, not {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}: expected {names}")


def check_fields(obj: Any, what: str) -> None:
    """ValueError for a field whose value is not of its declared type (`int | None`, `tuple[str, ...]`
    and the like read by their outer type; an int passes for a float, a bool never for a number)."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        kinds = [k.strip() for k in str(f.type).split("|")]
        if v is None and "None" in kinds:
            continue
        outer = [k.split("[")[0] for k in kinds if k != "None"]
        if not outer or any(k not in _TYPES for k in outer):
            continue  # a type this check does not know: left to the config's own checks
        want = tuple(t for k in outer for t in _TYPES[k])
        if isinstance(v, bool) and bool not in want or not isinstance(v, want):
            raise ValueError(f"{what} config {f.name}={v!r}: expected {' or '.join(kinds)}")


def drop_retired(d: dict, retired: dict[str, Any], what: str) -> dict:
    """`d` without the options removed after a flat A/B (`retired`: name -> the value that meant off, None
    for any value), so configs and models written before still load; ValueError where one is on."""
    out = dict(d)
    for k, off in retired.items():
        if k in out:
            v = out.pop(k)
            if off is not None and v != off:
                raise ValueError(f"{what} option {k!r} was removed after a flat A/B (docs/training.md, "
                                 f"\"Removed options\"); this config sets it to {v!r}")
    return out
