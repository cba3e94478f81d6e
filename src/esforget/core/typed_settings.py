"""A section of the config as a typed dataclass: every key known, every required key given, every
value of its declared type and within its declared range or choices, and the dataclass's own
cross-field checks — each refusal naming the key.

A field's range is declared with its type, `sigma: Annotated[float, Above(0)] = 1e-3`, and
checked both when a config is read (`typed`) and when code builds the dataclass itself
(`check_declared`, called first in each `__post_init__`); the settings guide prints it beside the
type.

The settings of each trainer (`ESConfig`, `GRPOMethodConfig`) and of the tiny model
(`TinyArchitecture`, `PretrainConfig`) are declared once, as dataclasses with a docstring under
every field (as TRL and cleanrl declare theirs); this turns the config's plain mapping into one.
`field_docs` reads those docstrings back, for the settings guide (`esforget.config.reference`).

Why by hand: the checks are a few lines over `dataclasses.fields` and `typing.get_type_hints`; a
validation library (pydantic) would declare the same settings a second time, its own way.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing


@dataclasses.dataclass(frozen=True)
class Range:
    """Numbers from `low` (excluded when `open`) up to `high` (included); None: unbounded."""

    low: float | None = None
    high: float | None = None
    open: bool = False

    def admits(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        low = None if self.low is None else f"{'>' if self.open else '≥'} {self.low:g}"
        high = None if self.high is None else f"≤ {self.high:g}"
        return " and ".join(part for part in (low, high) if part)


def AtLeast(low: float, high: float | None = None) -> Range:  # noqa: N802 — reads as a type
    return Range(low, high)


def Above(low: float, high: float | None = None) -> Range:  # noqa: N802
    return Range(low, high, open=True)


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of the listed values."""

    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", values)

    def admits(self, value) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def check_declared(settings) -> None:
    """A ValueError naming the first field of dataclass instance `settings` whose value lies
    outside its declared range or choices (null is left to the type: `int | None` admits it)."""
    hints = typing.get_type_hints(type(settings), include_extras=True)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        for bound in _bounds(hints[f.name]):
            if value is not None and not isinstance(value, list | tuple) and not bound.admits(value):
                raise ValueError(f"{f.name}={value!r}: must be {bound}")
            if isinstance(value, list | tuple) and not all(bound.admits(v) for v in value):
                raise ValueError(f"{f.name}={list(value)!r}: every item must be {bound}")


def typed(cls: type, mapping, where: str):
    """An instance of dataclass `cls` from `mapping`; a ValueError naming `where` (the config
    path of the section, e.g. `methods.es`) and the key unless every key is a field, every field
    without a default is given, and every value has its field's type."""
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in mapping
    ]
    if required:
        raise ValueError(f"{where}: missing key(s) {required}")
    hints = typing.get_type_hints(cls)
    for key, value in mapping.items():
        if not _is_a(value, hints[key]):
            raise ValueError(f"{where}.{key}={value!r}: expected {_name(hints[key])}, got {type(value).__name__}")
    try:
        return cls(**mapping)
    except ValueError as err:  # the dataclass's messages start with the key: "sigma=0: ..."
        raise ValueError(f"{where}.{err}" if str(err).split("=")[0] in fields else f"{where}: {err}") from None


def _bounds(hint) -> list:
    """The ranges and choices an `Annotated` type declares (those of its union's members too)."""
    if typing.get_origin(hint) is typing.Annotated:
        return [m for m in hint.__metadata__ if isinstance(m, Range | OneOf)]
    return [b for arg in typing.get_args(hint) for b in _bounds(arg)]


def _is_a(value, hint) -> bool:
    """Whether `value` (as YAML gives it) has type `hint`: an int is a float, a bool is no number,
    a list stands for a list or a tuple."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is_a(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        item = args[0] if args else typing.Any
        return isinstance(value, list | tuple) and all(item is typing.Any or _is_a(v, item) for v in value)
    return isinstance(value, hint)


def _name(hint) -> str:
    """`int | None` → "int or null", `list[float]` → "a list of float"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_name(arg) for arg in args)
    if hint is type(None):
        return "null"
    if origin in (list, tuple):
        return f"a list of {_name(args[0])}" if args else "a list"
    return getattr(hint, "__name__", str(hint))


def type_name(cls: type, field: str) -> str:
    """The declared type of `field` of dataclass `cls` and its range, as the settings guide
    writes them: "float, > 0", "int or null, ≥ 1"."""
    bounds = _bounds(typing.get_type_hints(cls, include_extras=True)[field])
    return ", ".join([_name(typing.get_type_hints(cls)[field]), *map(str, bounds)])


def field_docs(cls: type) -> dict[str, str]:
    """Field name → the docstring written under it in the class body (one paragraph)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for statement, following in zip(body, body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs
