"""Typed configs from plain mappings (recipe YAML): unknown keys and wrong types are usage errors.

``build(cls, mapping, where)`` checks every key against the dataclass's fields (naming the closest
valid key when one is unknown), checks each value against the field's annotation (int, float,
str, bool, tuples, dicts, nested configs written as mappings, and ``X | None``), then constructs
``cls`` so its own validation runs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from compressor.errors import UsageError, closest


def field_names(cls: type, exclude: tuple[str, ...] = ()) -> list[str]:
    """The dataclass fields a mapping may set."""
    return [f.name for f in dataclasses.fields(cls) if f.name not in exclude]


def check_keys(mapping: dict[str, Any], valid: list[str], where: str) -> None:
    """Exit 2 on the first unknown key, naming the closest valid one."""
    for key in mapping:
        if key not in valid:
            near = closest(str(key), valid)
            hint = f"did you mean '{near}'? " if near else ""
            raise UsageError(f"{where}: unknown key '{key}'", f"{hint}valid: {', '.join(sorted(valid))}")


def build(
    cls: type, mapping: dict[str, Any] | None, where: str, exclude: tuple[str, ...] = (), **fixed: Any
) -> Any:
    """``cls(**mapping, **fixed)`` after checking keys and value types; ``exclude`` keys are refused."""
    if not isinstance(mapping or {}, dict):
        raise UsageError(f"{where}: expected a mapping of settings, got {type(mapping).__name__}")
    mapping = dict(mapping or {})
    check_keys(mapping, [n for n in field_names(cls, exclude) if n not in fixed], where)
    hints = typing.get_type_hints(cls)
    values = {k: coerce(v, hints[k], f"{where}: '{k}'") for k, v in mapping.items()}
    return cls(**values, **fixed)


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against ``hint`` (YAML lists become tuples where a tuple is wanted)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type) and isinstance(value, dict):
        return build(hint, value, f"{where} ")  # a nested config written as a mapping
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return coerce(value, arg, where)  # its own key and value errors, not a type mismatch
            try:
                return coerce(value, arg, where)
            except UsageError:
                continue
        raise _wrong(value, hint, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _wrong(value, hint, where)
        inner = args[0] if args else Any
        return tuple(coerce(v, inner, where) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _wrong(value, hint, where)
        return dict(value)
    return _scalar(value, hint, where)


def _scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, hint):
        return value
    raise _wrong(value, hint, where)


_PLAIN = {
    tuple: "a list",
    dict: "a mapping",
    float: "a number",
    int: "an integer",
    str: "a string",
    bool: "true or false",
}


def _wrong(value: Any, hint: Any, where: str) -> UsageError:
    return UsageError(f"{where} expects {_name(hint)}, got {value!r}")


def _name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(hint) if a is not type(None))
    base = origin or hint
    return _PLAIN.get(base) or getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
