# Config checks, wildcard constraints and the input functions every stage shares.

import itertools

from pathlib import Path

from esforget.config import check as check_config
from esforget.config import method_for_run
from esforget.methods import training_dtype
from esforget.provenance import stage_hash

check_config(config)

TASKS = config["tasks"]
METHODS = config["methods"]
SPLITS = ["train", "validation", "test"]
RUN = "{model}/{method}/{task}/seed{seed}"
RUN_DIR = f"results/{RUN}"


def _one_of(names):
    return "|".join(sorted(names)) or "(?!)"


wildcard_constraints:
    model=_one_of(config["models"]),
    task=_one_of(TASKS),
    method=_one_of(METHODS),
    seed=r"\d+",
    split=_one_of(SPLITS),


ES_METHODS = _one_of(n for n, m in METHODS.items() if m["algorithm"] == "es")
GRPO_METHODS = _one_of(n for n, m in METHODS.items() if m["algorithm"] == "grpo")


def runs():
    """Every (model, method, task, seed) of the config, as wildcard dicts."""
    r = config["runs"]
    return [
        dict(model=m, method=meth, task=t, seed=s)
        for m, meth, t, s in itertools.product(r["models"], r["methods"], r["tasks"], config["seeds"])
    ]


SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
PACKAGE = Path(workflow.basedir) / "src" / "esforget"  # what the scripts import when it is there


def code_of(script):
    """Content hash of a stage's script and the package code it runs (esforget.provenance):
    passed as a param, so a change in that code reruns the stage (the profile leaves out
    Snakemake's own `code` trigger, which compares script modification times)."""
    return stage_hash(SCRIPTS / script, PACKAGE if PACKAGE.is_dir() else None)


def run_method(wildcards):
    """The method's keys for this run, `runs.overrides` applied."""
    return method_for_run(config, wildcards.model, wildcards.method, wildcards.task)


def run_paths(pattern):
    return [pattern.format(**run) for run in runs()]


def split_path(task, split):
    return f"data/{task}/{split}.parquet"


def pretrain_tasks():
    """Tasks the tiny base is pretrained on: every task that is trained on or evaluated."""
    return sorted(set(config["runs"]["tasks"]) | set(config["evaluation"]["tasks"]))


def base_model_inputs(wildcards):
    if config["models"][wildcards.model]["kind"] != "tiny":
        return []
    return [split_path(t, s) for t in pretrain_tasks() for s in ("train", "validation")]


def eval_inputs(wildcards):
    return [split_path(t, config["evaluation"]["split"]) for t in config["evaluation"]["tasks"]]
