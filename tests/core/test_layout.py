"""Output paths name what defines their contents (esforget.core.layout)."""

import copy

import pytest

from esforget.config.load import load
from esforget.core import layout
from tests.shared import REPO


@pytest.fixture
def default():
    return load(["config/config.yaml"], REPO)


def test_two_profiles_countdown_tasks_of_one_name_live_apart(default, tmp_path):
    harder = tmp_path / "harder.yaml"
    harder.write_text("tasks: {countdown: {source: {number_range: [1, 50]}}}\n")
    other = load(["config/config.yaml", str(harder)], REPO)
    assert default["tasks"]["countdown"] != other["tasks"]["countdown"]
    assert layout.data_dir(default, "countdown") != layout.data_dir(other, "countdown")
    assert layout.data_dir(default, "countdown").startswith("data/countdown-")


def test_a_profile_layered_over_the_default_shares_its_data_and_base(default):
    precision = load(["config/config.yaml", "config/precision.yaml"], REPO)
    for task in default["tasks"]:
        assert layout.task_id(precision, task) == layout.task_id(default, task)
    assert layout.base_dir(precision, "tiny") == layout.base_dir(default, "tiny")


def test_ids_follow_the_definition_not_its_spelling(default):
    reordered = copy.deepcopy(default)
    reordered["tasks"]["countdown"] = dict(reversed(list(reordered["tasks"]["countdown"].items())))
    reordered["models"]["tiny"]["resources"] = {"gpus": 1, "mem_mb": 64000}  # where it runs, not what it is
    assert layout.task_id(reordered, "countdown") == layout.task_id(default, "countdown")
    assert layout.model_id(reordered, "tiny") == layout.model_id(default, "tiny")


def test_a_changed_task_or_seed_changes_the_data_and_the_base_pretrained_on_it(default):
    changed = copy.deepcopy(default)
    changed["tasks"]["arith"]["source"]["operand_range"] = [1, 8]
    assert layout.task_id(changed, "arith") != layout.task_id(default, "arith")
    assert layout.task_id(changed, "countdown") == layout.task_id(default, "countdown")
    assert layout.model_id(changed, "tiny") != layout.model_id(default, "tiny")  # pretrained on arith
    reseeded = {**default, "data_seed": default["data_seed"] + 1}
    assert layout.task_id(reseeded, "countdown") != layout.task_id(default, "countdown")


def test_a_run_folder_joins_the_model_method_task_and_seed(default):
    run = layout.run_dir(default, "tiny", "es", "countdown", 2)
    assert run == f"results/{layout.model_id(default, 'tiny')}/es/{layout.task_id(default, 'countdown')}/seed2"
