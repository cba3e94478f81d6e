"""A section of the config as a typed dataclass: every key known, every required key given, every
value of its declared type, and the dataclass's own range checks — each refusal naming the key.

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
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


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
    """The declared type of `field` of dataclass `cls`, as the settings guide writes it."""
    return _name(typing.get_type_hints(cls)[field])


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
