"""config/paper.yaml holds the study's exact settings (PAPER.md), validates, and plans the
study's DAG on its own, without the default profile's tiny model or tasks mixed into it."""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from esforget.config import check
from esforget.es import ESConfig
from esforget.grpo import GRPOMethodConfig
from esforget.methods import method_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
NEW_TASKS = ["countdown", "gsm8k", "math", "olympiadbench"]


@pytest.fixture(scope="module")
def paper():
    return yaml.safe_load((REPO / "config" / "paper.yaml").read_text())


def test_it_validates_and_cross_checks_against_the_authors_splits(paper, paper_data):
    cfg = copy.deepcopy(paper)
    for task in NEW_TASKS:  # the profile expects them under ./paper-data; point there instead
        assert cfg["tasks"][task]["source"] == {"kind": "verl_parquet", "path": f"paper-data/{task}"}
        cfg["tasks"][task]["source"]["path"] = str(paper_data / task)
    validate(copy.deepcopy(cfg), SCHEMA)
    check(cfg)


def test_models_tasks_and_probe_are_the_studys(paper):
    assert {m["name"] for m in paper["models"].values()} == {"Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"}
    assert paper["runs"]["tasks"] == NEW_TASKS and paper["runs"]["methods"] == ["es", "grpo"]
    assert all(paper["tasks"][t]["max_new_tokens"] == 1024 and "stop_strings" not in paper["tasks"][t] for t in NEW_TASKS)
    hellaswag = paper["tasks"]["hellaswag"]
    assert hellaswag["role"] == "prior" and hellaswag["max_new_tokens"] == 10
    assert (hellaswag["source"]["every"], hellaswag["source"]["instruction"]) == (10, "Answer with the number only.")
    mmlu = paper["tasks"]["mmlu"]
    assert (mmlu["role"], mmlu["scorer"], mmlu["source"]["shots"], mmlu["splits"]["test"]) == ("prior", "letter", 5, 500)
    assert paper["evaluation"]["tasks"] == [*NEW_TASKS, "hellaswag", "mmlu"]
    assert paper["analysis"]["sparsity_thresholds"] == [1e-6]


def test_es_is_the_authors_algorithm(paper):
    es = method_config("es", paper["methods"]["es"])
    assert isinstance(es, ESConfig)
    assert (es.population_size, es.sigma, es.alpha, es.iterations) == (30, 1e-3, 5e-4, 500)
    assert (es.fitness_shaping, es.mirrored, es.noise, es.prompts_per_iteration) == ("zscore", False, "paper", None)
    assert (es.dtype, es.numerics, es.checkpoint_every, es.validate_every) == ("float16", "authors", 50, 10)
    assert paper["seeds"] == [33]
    # The exact fp32-master variant stays beside it as an ablation, otherwise equal.
    master = method_config("es_master", paper["methods"]["es_master"])
    assert (master.numerics, master.save_master) == ("master", True)
    assert {**vars(master), "numerics": "authors", "save_master": False, "fitness_shaping": "zscore"} == vars(es)


def test_grpo_is_verl_mapped_onto_trl_with_the_nearest_whole_minibatch(paper):
    grpo = method_config("grpo", paper["methods"]["grpo"])
    assert isinstance(grpo, GRPOMethodConfig)
    # Every field equals the trainer's documented paper default (docs/grpo_mapping.md),
    # with 40-prompt mini-batches standing in for VeRL's 32 (6.25 steps per rollout).
    assert grpo == GRPOMethodConfig()
    assert (grpo.prompts_per_rollout, grpo.prompts_per_minibatch, grpo.num_generations) == (200, 40, 30)
    assert (grpo.learning_rate, grpo.beta, grpo.epsilon, grpo.rollouts) == (1e-6, 0.001, 0.2, 500)
    assert (grpo.checkpoint_every, grpo.validate_every) == (30, 10)


def test_a_dry_run_plans_every_run_of_the_study_and_nothing_of_the_default(tmp_path, paper_data):
    for item in ("Snakefile", "workflow", "config", "envs"):
        copy_item = shutil.copytree if (REPO / item).is_dir() else shutil.copy
        copy_item(REPO / item, tmp_path / item)
    (tmp_path / "paper-data").symlink_to(paper_data)
    plan = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config/paper.yaml"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = dict(line.split()[:2] for line in plan.stdout.splitlines() if line.split()[:1] in (["train_es"], ["train_grpo"], ["prepare_data"]))
    # 2 models × 4 tasks × 1 seed per method; data for 4 new tasks, HellaSwag and MMLU
    assert counts == {"train_es": "8", "train_grpo": "8", "prepare_data": "6"}
    assert "tiny" not in plan.stdout and "arith" not in plan.stdout
