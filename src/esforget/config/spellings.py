"""Old spellings of config values, still accepted: each is rewritten to the current spelling
before the config is validated, with a warning that names the key, so that configs written
for an earlier version run unchanged and say what to rename.

"As the authors did" is spelled `authors` in every key: `numerics: authors`, `noise: authors`
(before: `paper`) and `prompt_style: authors` (before: `paper`).
"""

from __future__ import annotations

import warnings

RENAMED = {"noise": {"paper": "authors"}, "prompt_style": {"paper": "authors"}}
"""key → {old value: current value}."""


def update_spellings(config: dict) -> list[str]:
    """Rewrite every value of `config` given in an old spelling (`RENAMED`) to its current one,
    in place; warn (FutureWarning) and return one message per value rewritten. Runs before
    the schema, so it leaves whatever it does not recognise for the schema to refuse."""
    messages = []

    def update(mapping, key: str, where: str) -> None:
        if not isinstance(mapping, dict):
            return
        old = mapping.get(key)
        new = RENAMED[key].get(old) if isinstance(old, str) else None
        if new is not None:
            mapping[key] = new
            messages.append(f"{where}.{key}: {old!r} is the old spelling of {new!r}, read as {new!r}; rename it")

    for name, method in _items(config.get("methods")):
        update(method, "noise", f"methods.{name}")
    overrides = config.get("runs", {}).get("overrides", []) if isinstance(config.get("runs"), dict) else []
    for k, override in enumerate(overrides if isinstance(overrides, list) else []):
        update(override.get("set") if isinstance(override, dict) else None, "noise", f"runs.overrides[{k}].set")
    for name, task in _items(config.get("tasks")):
        update(task.get("source") if isinstance(task, dict) else None, "prompt_style", f"tasks.{name}.source")
    for message in messages:
        warnings.warn(message, FutureWarning, stacklevel=2)
    return messages


def _items(mapping) -> list:
    return list(mapping.items()) if isinstance(mapping, dict) else []
