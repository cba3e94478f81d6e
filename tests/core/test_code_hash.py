"""A stage's code hash follows the package modules its script runs, and only those."""

import shutil
from pathlib import Path

import pytest

from esforget.core.code_hash import stage_hash, stage_modules
from tests.shared import REPO

SCRIPTS = REPO / "workflow" / "scripts"


@pytest.fixture()
def package(tmp_path):
    """A copy of the package to edit."""
    import esforget

    return Path(shutil.copytree(Path(esforget.__file__).parent, tmp_path / "esforget"))


def hashes(package):
    return {script.stem: stage_hash(script, package) for script in SCRIPTS.glob("*.py")}


def test_each_stage_reaches_the_modules_it_runs_lazy_imports_included(package):
    names = {s.stem: {str(m.relative_to(package)) for m in stage_modules(s, package)} for s in SCRIPTS.glob("*.py")}
    assert {
        "evaluate/retention.py",
        "evaluate/likelihood.py",
        "decoding/greedy_scorer.py",
        "tasks/countdown.py",
    } <= names["evaluate"]
    # training reaches both trainers only through lazy imports inside esforget.train.methods.train
    assert {"train/launch.py", "train/methods.py", "train/es.py", "train/noise.py", "train/grpo.py"} <= names["train"]
    assert "train/es.py" not in names["evaluate"] and "evaluate/retention.py" not in names["train"]
    assert names["analyze_weights"] == {
        "__init__.py",
        "analyze/__init__.py",
        "analyze/weight_diff.py",
        "core/__init__.py",
        "core/checkpoints.py",
        "core/files.py",
        "core/logs.py",
        "core/tensors.py",
    }


def test_a_line_of_package_code_changes_the_hash_of_the_stages_that_run_it(package):
    before = hashes(package)
    with open(package / "evaluate" / "retention.py", "a") as handle:
        handle.write("\n# one more line\n")
    after = hashes(package)
    assert {stage for stage in before if before[stage] != after[stage]} == {"evaluate"}

    with open(package / "tasks" / "countdown.py", "a") as handle:
        handle.write("\n# the reward module, used by data, base, training and evaluation\n")
    again = hashes(package)
    assert {stage for stage in after if after[stage] != again[stage]} == {
        "prepare_data",
        "prepare_base_model",
        "train",
        "evaluate",
    }


def test_the_hash_is_of_content_not_of_place_or_time(package, tmp_path):
    moved = Path(shutil.copytree(package, tmp_path / "elsewhere" / "esforget"))
    (moved / "core" / "files.py").touch()
    assert hashes(moved) == hashes(package)
