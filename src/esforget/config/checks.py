"""Cross-field checks of a workflow config, run before any job starts.

The JSON schema (workflow/schemas/config.schema.yaml) checks each key's type and range; this
checks what a schema cannot: names that must refer to each other, the sections declared as typed
dataclasses (each method against its trainer's config, a tiny model's `architecture` and
`pretrain`; `esforget.core.typed_settings`), input files that must exist. Messages quote the
offending values.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from esforget.base.tiny_config import PretrainConfig, TinyArchitecture
from esforget.config.runs import all_runs, method_for_run
from esforget.core.typed_settings import typed
from esforget.train.es_config import ESConfig
from esforget.train.methods import method_config


def check(config: dict) -> None:
    tasks = config["tasks"]
    _subset("runs.models", config["runs"]["models"], config["models"])
    _subset("runs.methods", config["runs"]["methods"], config["methods"])
    _subset("runs.tasks", config["runs"]["tasks"], tasks)
    _subset("evaluation.tasks", config["evaluation"]["tasks"], tasks)
    for key in ("compare_to", "plain_es"):
        if key in config["analysis"]:
            _subset(f"analysis.{key}", [config["analysis"][key]], dict.fromkeys(config["runs"]["methods"]))
    if "plain_es" in config["analysis"] and config["methods"][config["analysis"]["plain_es"]]["algorithm"] != "es":
        raise ValueError(f"analysis.plain_es={config['analysis']['plain_es']!r} is not an ES method")
    for name in config["runs"]["tasks"]:
        if tasks[name]["role"] != "new":
            raise ValueError(f"runs.tasks lists {name!r}, but tasks.{name}.role is {tasks[name]['role']!r}, not 'new'")
    for name, spec in config["methods"].items():
        method_config(name, spec)
    for k, override in enumerate(config["runs"].get("overrides", [])):
        for key, defined in (("model", config["models"]), ("method", config["methods"]), ("task", tasks)):
            if key in override["match"] and override["match"][key] not in defined:
                raise ValueError(
                    f"runs.overrides[{k}].match.{key}={override['match'][key]!r} is not defined; "
                    f"defined: {sorted(defined)}"
                )
        if "algorithm" in override["set"]:
            raise ValueError(f"runs.overrides[{k}].set: a run cannot change its method's algorithm")
        if not any(all(run[key] == value for key, value in override["match"].items()) for run in all_runs(config)):
            warnings.warn(
                f"runs.overrides[{k}].match={override['match']} matches no run of runs.models × runs.methods × "
                "runs.tasks: it changes nothing",
                stacklevel=2,
            )
    for model in config["runs"]["models"]:
        for method in config["runs"]["methods"]:
            for task in config["runs"]["tasks"]:
                where = f"{method} (model {model}, task {task})"
                cfg = method_config(where, method_for_run(config, model, method, task))
                _fits_splits(where, cfg, task, tasks[task])
                if isinstance(cfg, ESConfig):
                    _replayable(where, cfg, tasks)
    for name, task in tasks.items():
        source = task["source"]
        if task["scorer"] == "letter" and task["role"] != "prior":
            raise ValueError(
                f"tasks.{name}.scorer='letter' scores no reply, so it cannot be trained on; "
                f"role is {task['role']!r}, not 'prior'"
            )
        if task.get("extra_scorers") and task["scorer"] == "letter":
            raise ValueError(
                f"tasks.{name}.extra_scorers={task['extra_scorers']}: scorer 'letter' makes no reply to grade"
            )
        if source.get("loader") == "mmlu" and not {"shots", "shots_split"} <= set(source):
            raise ValueError(f"tasks.{name}.source: loader 'mmlu' needs 'shots' and 'shots_split' (e.g. 5 and 'dev')")
        if source["kind"] == "verl_parquet":
            for split in ("train", "test"):
                path = Path(source["path"]) / f"{split}.parquet"
                if not path.exists():
                    raise FileNotFoundError(f"tasks.{name}.source.path: missing {path}")
        if source["kind"] == "local_jsonl":
            for split, file in source["splits"].items():
                if not (Path(source["path"]) / file).exists():
                    raise FileNotFoundError(
                        f"tasks.{name}.source.splits.{split}: missing {Path(source['path']) / file}"
                    )
        if source["kind"] in ("hub", "local_jsonl") and source["loader"] == "hellaswag":
            missing = sorted({"every", "shuffle_seed", "instruction"} - set(source))
            if missing:
                raise ValueError(f"tasks.{name}.source: loader 'hellaswag' needs {missing}")
        for key in ("number_range", "operand_range", "target_range"):
            if key in source and source[key][0] > source[key][1]:
                raise ValueError(f"tasks.{name}.source.{key}={source[key]}: the low end exceeds the high end")
        if source["kind"] == "countdown_generator":
            _reachable(f"tasks.{name}.source", source)
    for name, spec in config["models"].items():
        if spec["kind"] == "tiny":
            typed(TinyArchitecture, spec["architecture"], f"models.{name}.architecture")
            typed(PretrainConfig, spec["pretrain"], f"models.{name}.pretrain")
    if "tensorboard" in config.get("logging", {}).get("report_to", []) and not _installed("tensorboard"):
        raise ModuleNotFoundError(
            "logging.report_to lists tensorboard, which is not installed: pip install tensorboard"
        )


def _fits_splits(where: str, cfg, task: str, spec: dict) -> None:
    """Refuse a method that asks for more prompts per step, or more validation items, than the
    task's splits hold (where the config gives their sizes)."""
    sizes = spec.get("splits", {})
    per_step = "prompts_per_iteration" if isinstance(cfg, ESConfig) else "prompts_per_rollout"
    wanted = {"train": (per_step, getattr(cfg, per_step)), "validation": ("validation_size", cfg.validation_size)}
    for split, (key, value) in wanted.items():
        if value is not None and split in sizes and value > sizes[split]:
            raise ValueError(
                f"methods.{where}: {key}={value}, but tasks.{task}.splits.{split} holds {sizes[split]} items"
            )


def _replayable(where: str, cfg: ESConfig, tasks: dict) -> None:
    """Refuse replay of a task that is not defined, not a prior task, scored without a reply,
    or whose train split holds fewer prompts than each iteration replays."""
    for name in cfg.replay_tasks:
        key = f"methods.{where}: replay_tasks lists {name!r}"
        if name not in tasks:
            raise ValueError(f"{key}, not defined; defined: {sorted(tasks)}")
        if tasks[name]["role"] != "prior":
            raise ValueError(f"{key}, but tasks.{name}.role is {tasks[name]['role']!r}, not 'prior'")
        if tasks[name]["scorer"] == "letter":
            raise ValueError(f"{key}, but tasks.{name}.scorer='letter' scores no reply to reward")
        size = tasks[name].get("splits", {}).get("train")
        if size is not None and cfg.replay_prompts > size:
            raise ValueError(
                f"methods.{where}: replay_prompts={cfg.replay_prompts}, "
                f"but tasks.{name}.splits.train holds {size} items"
            )


def _reachable(where: str, source: dict) -> None:
    """Refuse a Countdown generator whose target range its numbers and ops cannot reach: data
    preparation would give up on it only after drawing in vain (a fraction of a second here)."""
    import random

    from esforget.tasks.countdown import random_puzzle

    try:
        random_puzzle(random.Random(0), source["count"], *source["number_range"], source["ops"], source["target_range"])
    except ValueError as err:
        raise ValueError(f"{where}.target_range={source['target_range']}: {err}") from None


def _subset(key: str, names: list[str], defined: dict) -> None:
    unknown = [n for n in names if n not in defined]
    if unknown:
        raise ValueError(f"{key} names {unknown}, not defined; defined: {sorted(defined)}")


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None
