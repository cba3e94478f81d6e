# Wildcard constraints and the input functions every stage shares.

from pathlib import Path

from esforget.config.resources import SMALL_JOB, job_resources
from esforget.config.runs import all_runs, method_for_run
from esforget.core import layout
from esforget.core.code_hash import canonical, stage_hash
from esforget.train.methods import training_dtype

config.update(canonical(config))  # params compared by repr: key order in the YAML must not matter

TASKS = config["tasks"]
METHODS = config["methods"]
SPLITS = ["train", "validation", "test"]
# Outputs live under ids that hash what defines them (`countdown-1a2b3c4d`, see esforget.core.layout):
# differently defined tasks and models of the same name never share a path.
TASK_OF, MODEL_OF = layout.ids(config)
RUN = "{model_id}/{method}/{task_id}/seed{seed}"
RUN_DIR = f"results/{RUN}"
BASE_DIR = "results/{model_id}/base"


def _one_of(names):
    return "|".join(sorted(names)) or "(?!)"


wildcard_constraints:
    model_id=_one_of(MODEL_OF),
    task_id=_one_of(TASK_OF),
    method=_one_of(METHODS),
    seed=r"\d+",
    split=_one_of(SPLITS),


def names(wildcards):
    """The model and task names (and method, seed) behind a job's directory ids."""
    named = {"model": MODEL_OF[wildcards.model_id]}
    if "task_id" in wildcards.keys():
        named.update(task=TASK_OF[wildcards.task_id], method=wildcards.method, seed=int(wildcards.seed))
    return named


SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"
PACKAGE = Path(workflow.basedir) / "src" / "esforget"  # what the scripts import when it is there


def code_of(script):
    """Content hash of a stage's script and the package code it runs (esforget.core.code_hash):
    passed as a param, so a change in that code reruns the stage (the profile leaves out
    Snakemake's own `code` trigger, which compares script modification times)."""
    return stage_hash(SCRIPTS / script, PACKAGE if PACKAGE.is_dir() else None)


def model_spec(wildcards):
    """The definition of the job's model (its `resources` left out: they rerun nothing)."""
    return layout.model_definition(config["models"][MODEL_OF[wildcards.model_id]])


def model_resource(key):
    """Resource `key` (gpus, mem_mb, runtime) of the job's model, for a cluster's scheduler."""
    return lambda wildcards: job_resources(config["models"][MODEL_OF[wildcards.model_id]])[key]


def train_threads(wildcards):
    """A training job's threads: `threads.train_es` or `threads.train_grpo`, by the method's algorithm."""
    return config["threads"][f"train_{METHODS[wildcards.method]['algorithm']}"]


def run_method(wildcards):
    """The method's keys for this run, `runs.overrides` applied."""
    return method_for_run(config, MODEL_OF[wildcards.model_id], wildcards.method, TASK_OF[wildcards.task_id])


def run_paths(name):
    """The file `name` of every run's folder."""
    return [f"{layout.run_dir(config, **run)}/{name}" for run in all_runs(config)]


def split_path(task, split):
    return layout.split_path(config, task, split)


def run_split(split):
    """Input function: the split of the run's training task."""
    return lambda wildcards: split_path(TASK_OF[wildcards.task_id], split)


def replay_splits(wildcards):
    """Input function: the train split of each prior task the run's ES method replays."""
    return [split_path(name, "train") for name in run_method(wildcards).get("replay_tasks", [])]


def compared_run(wildcards):
    """The run whose update this run's is compared with (config `analysis.compare_to`): the same
    model, task and seed under that method; None for that method's own runs, or where the
    config has no such run."""
    other = config["analysis"].get("compare_to")
    if other is None or other == wildcards.method:
        return None
    run = {
        "model": MODEL_OF[wildcards.model_id],
        "method": other,
        "task": TASK_OF[wildcards.task_id],
        "seed": int(wildcards.seed),
    }
    return run if run in all_runs(config) else None


def compared_checkpoints(wildcards):
    """Input function: the compared run's checkpoints (`compared_run`), or none."""
    run = compared_run(wildcards)
    return [] if run is None else f"{layout.run_dir(config, **run)}/checkpoints"


def compared_dtype(wildcards):
    """The dtype the compared run started from (its ΔW is taken against the base rounded to it)."""
    run = compared_run(wildcards)
    if run is None:
        return None
    return training_dtype(method_for_run(config, run["model"], run["method"], run["task"]))


def pretrain_data(wildcards):
    """The train and validation splits a tiny base is pretrained on, by task; none for other models."""
    if config["models"][MODEL_OF[wildcards.model_id]]["kind"] != "tiny":
        return {}
    return {task: {s: split_path(task, s) for s in ("train", "validation")} for task in layout.pretrain_tasks(config)}


def base_model_inputs(wildcards):
    return [path for splits in pretrain_data(wildcards).values() for path in splits.values()]


def eval_inputs(wildcards):
    return [split_path(t, config["evaluation"]["split"]) for t in config["evaluation"]["tasks"]]
