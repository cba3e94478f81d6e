"""Where every output lives: directories named after what defines their contents.

Two profiles may define a task of the same name differently (the default's `countdown` draws
numbers 1–12 with + and −, the paper's reads the authors' split), and a model of the same
name too. Were outputs named by task and model alone, running one profile after the other
would silently replace the other's data and leave its results computed on data no longer there. So a task's
data lives in `data/<task>-<tag>/`, where the tag is a hash of the task's definition and the
data seed, and a base model and its runs in `results/<model>-<tag>/`, the tag hashing the
model's definition and, for a model pretrained here, the tags of the data it learns from.
Equal definitions give equal paths, so profiles layered over one another share their data and
base; a changed definition gets a new directory and leaves the old one intact.

Methods are not in the tags: a changed method reruns its runs in place (Snakemake's params
trigger), as any edited setting should.
"""

from __future__ import annotations

import hashlib
import json

TAG_LENGTH = 8
"""Hex digits of the sha256 kept in a directory name: 32 bits, ample for a repository's handful
of definitions of one task or model."""


def definition_tag(definition: dict) -> str:
    """Short sha256 of a definition's canonical JSON (sorted keys, so key order is irrelevant)."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:TAG_LENGTH]


def task_id(config: dict, task: str) -> str:
    """`<task>-<tag>`: the task's definition and the data seed decide its splits."""
    return f"{task}-{definition_tag({'task': config['tasks'][task], 'data_seed': config['data_seed']})}"


def pretrain_tasks(config: dict) -> list[str]:
    """Tasks a tiny base is pretrained on: every task that is trained on or evaluated."""
    return sorted(set(config["runs"]["tasks"]) | set(config["evaluation"]["tasks"]))


def model_definition(spec: dict) -> dict:
    """A model's keys that decide its weights: all but `resources` (where its jobs run)."""
    return {key: value for key, value in spec.items() if key != "resources"}


def model_id(config: dict, model: str) -> str:
    """`<model>-<tag>`: the model's definition and, for a base pretrained here, its data."""
    spec = config["models"][model]
    definition = {"model": model_definition(spec)}
    if spec["kind"] == "tiny":
        definition["pretrain_data"] = [task_id(config, t) for t in pretrain_tasks(config)]
    return f"{model}-{definition_tag(definition)}"


def data_dir(config: dict, task: str) -> str:
    return f"data/{task_id(config, task)}"


def split_path(config: dict, task: str, split: str) -> str:
    return f"{data_dir(config, task)}/{split}.parquet"


def base_dir(config: dict, model: str) -> str:
    """The base model's folder: its weights under `model/`, its scores, its pretraining history."""
    return f"results/{model_id(config, model)}/base"


def run_dir(config: dict, model: str, method: str, task: str, seed: int | str) -> str:
    return f"results/{model_id(config, model)}/{method}/{task_id(config, task)}/seed{seed}"


def ids(config: dict) -> tuple[dict[str, str], dict[str, str]]:
    """Maps from the directory ids of this config back to names: (task ids, model ids)."""
    return (
        {task_id(config, t): t for t in config["tasks"]},
        {model_id(config, m): m for m in config["models"]},
    )
