"""A config file read strictly: one message naming the file (and the line, where YAML gives one)
for every way a file can be wrong, before any setting in it is looked at.

Snakemake reads `--configfile` with a YAML loader on which a key given twice silently keeps the
last value, and reports a syntax error without the file or the line. The Snakefile and
`esforget.config.load` read every config file again through `read`, which refuses both.
"""

from __future__ import annotations

import collections.abc
from pathlib import Path

import yaml


class ConfigFileError(ValueError):
    """A config file that cannot be read as a mapping of settings; the message names it."""


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that gives a key twice. A merge key (`<<: *base`)
    brings an anchor's keys, which the mapping's own keys may override, as Snakemake reads it."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, collections.abc.Hashable):
                continue  # YAML's own loader refuses it, with its line
            if key in seen:
                raise ConfigFileError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} given twice (first on line {seen[key]}); "
                    "YAML would silently keep the last"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read(path: str | Path) -> dict:
    """The settings in config file `path`: a YAML (or JSON) mapping, possibly empty."""
    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"{path}: no such config file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigFileError(f"{path}, line {line}: not UTF-8 text (byte {err.object[err.start]:#04x})") from None
    try:
        settings = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 — a SafeLoader
    except ConfigFileError as err:
        raise ConfigFileError(f"{path}, {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigFileError(f"{path}{where}: not valid YAML: {problem}") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigFileError(f"{path}: expected a mapping of settings at the top level, got {type(settings).__name__}")
    return settings
