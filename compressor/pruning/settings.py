"""A pruning method's own settings: one frozen dataclass per method, typed, checked on construction.

A method's settings class (named by its registry entry, ``MethodInfo.settings``) holds what only
that method reads: SAP's p and q, slimming's sparsity phase, the lottery's pruning rate. What the
methods share (sparsity, scope, steps, data, fine-tuning) stays in
:class:`~compressor.pruning.base.PruneConfig`, which carries the settings object as ``settings``.
Generic code is derived from the fields, never from a second list: ``--opt KEY=VALUE`` and the
``options:`` of recipes (:func:`from_options`), the ``--opt`` help and ``compress list``
(:func:`describe`, :func:`spelled`).

Torch-free: ``compress --help`` and ``compress list`` read these classes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Union

from compressor.errors import UsageError, closest

_TRUE, _FALSE, _NONE = ("true", "yes", "on", "1"), ("false", "no", "off", "0"), ("none", "null")
_KINDS = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


class _Mismatch(Exception):
    """A value that does not convert to a field's type."""


@dataclasses.dataclass(frozen=True)
class MethodSettings:
    """Base of every method's settings class.

    On construction each value is converted to its field's type (``"0.5"`` and ``1`` to a float
    field give 0.5 and 1.0; ``"true"``/``"false"``, ``"yes"``/``"no"``, ``1``/``0`` to a bool
    field; ``"none"`` to an optional one; an integer field takes whole numbers only), so the
    command line, a recipe and Python build equal settings; then :meth:`check` tests the values.
    A value that does not convert is a :class:`~compressor.errors.UsageError` naming the field.
    """

    title: ClassVar[str] = "method"  # how messages name the method

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                converted = convert(value, hints[f.name])
            except _Mismatch:
                raise UsageError(
                    f"{self.title} option '{f.name}' expects {kind(hints[f.name])}, got {value!r}",
                    f"default: {f.name}={spelled(f.default)}",
                ) from None
            object.__setattr__(self, f.name, converted)
        self.check()

    def check(self) -> None:
        """Check the values (ranges, choices); a subclass raises UsageError with a hint."""


@dataclasses.dataclass(frozen=True)
class NoSettings(MethodSettings):
    """Settings of a method that has none of its own (l1, l2, random, magnitude): every option of
    these methods is shared, in :class:`~compressor.pruning.base.PruneConfig`."""


def from_options(
    cls: type[MethodSettings], options: Mapping[str, Any], method: str, base: MethodSettings | None = None
) -> MethodSettings:
    """``base`` (default: ``cls()``) with the fields named in ``options`` replaced, each value
    converted by its field's type; an unknown name is an error naming the closest valid one."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in options:
        if key not in names:
            near = closest(str(key), names)
            hint = f"did you mean '{near}'? " if near else ""
            valid = (
                f"{hint}valid: {', '.join(sorted(names))}"
                if names
                else "it has no options of its own; its settings are flags (compress prune --help)"
            )
            raise UsageError(f"unknown option '{key}' for method '{method}'", valid)
    return dataclasses.replace(base if base is not None else cls(), **options)


def describe(cls: type[MethodSettings]) -> list[dict[str, Any]]:
    """Each field of ``cls`` as ``{"name", "type", "default"}`` (``compress list --json``)."""
    hints = typing.get_type_hints(cls)
    return [
        {"name": f.name, "type": type_name(hints[f.name]), "default": f.default}
        for f in dataclasses.fields(cls)
    ]


def defaults_line(cls: type[MethodSettings]) -> str:
    """``p=0.5, q=1.0, ...``: the fields with their defaults as ``--opt`` takes them."""
    return ", ".join(f"{f.name}={spelled(f.default)}" for f in dataclasses.fields(cls))


def options_help(command: str) -> str:
    """The ``--opt`` help of ``command`` (prune): each of its methods' settings with their defaults."""
    from compressor import registry

    lines = [
        f"{name}: {defaults_line(registry.method(name).settings_class())}"
        for name in registry.methods_for(command)
    ]
    return "; ".join(line for line in lines if not line.endswith(": "))


def spelled(value: Any) -> str:
    """A default as the command line writes it: ``none``, ``true``, ``0.5``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def type_name(hint: Any) -> str:
    """``float``, ``int``, ``str``, ``bool``, ``float | None``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def kind(hint: Any) -> str:
    """How an error names the values a field takes: ``a number``, ``a number or none``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else kind(a) for a in typing.get_args(hint))
    return _KINDS.get(hint, type_name(hint))


def convert(value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` names (float, int, bool, str, or one of them | None)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = typing.get_args(hint)
        if type(None) in args and (
            value is None or isinstance(value, str) and value.strip().lower() in _NONE
        ):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    return _SCALARS.get(hint, _exact(hint))(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise _Mismatch


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, int):
        return value
    number = _to_float(value)
    if not number.is_integer():
        raise _Mismatch
    return int(number)


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Mismatch
    try:
        return float(value)
    except ValueError:
        raise _Mismatch from None


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a path or name the command line read as a number
    raise _Mismatch


def _exact(hint: Any):
    def check(value: Any) -> Any:
        if isinstance(hint, type) and isinstance(value, hint):
            return value
        raise _Mismatch

    return check


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}
