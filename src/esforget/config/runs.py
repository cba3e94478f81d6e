"""The runs a config makes and the method each trains with."""

from __future__ import annotations

import itertools


def all_runs(config: dict) -> list[dict]:
    """Every run of the config, by name: one (model, method, task, seed) per element of the
    product of `runs.models`, `runs.methods`, `runs.tasks` and `seeds`, in that order."""
    r = config["runs"]
    return [
        {"model": model, "method": method, "task": task, "seed": seed}
        for model, method, task, seed in itertools.product(r["models"], r["methods"], r["tasks"], config["seeds"])
    ]


def method_for_run(config: dict, model: str, method: str, task: str) -> dict:
    """The keys of `methods.<method>` for one run: the method with every `runs.overrides` entry
    whose `match` fits (model, method, task) applied in order, later entries winning. This is
    how settings that differ per model and task (the authors' GSM8K scripts) are written."""
    run = {"model": model, "method": method, "task": task}
    spec = dict(config["methods"][method])
    for override in config["runs"].get("overrides", []):
        if all(run[key] == value for key, value in override["match"].items()):
            spec.update(override["set"])
    return spec
