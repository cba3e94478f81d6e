"""Configs written with an old spelling of a value still run, read in the current spelling, and
say which key to rename."""

import copy

import pytest

from esforget.config.load import load
from esforget.config.spellings import update_spellings
from tests.shared import REPO

RENAMED = "'paper' is the old spelling of 'authors', read as 'authors'; rename it"


def test_paper_is_read_as_authors_in_every_key_that_had_it_naming_each():
    config = {
        "methods": {"es": {"algorithm": "es", "noise": "paper"}, "grpo": {"algorithm": "grpo"}},
        "runs": {"overrides": [{"match": {"method": "es"}, "set": {"noise": "paper", "sigma": 0.1}}]},
        "tasks": {
            "countdown": {"source": {"kind": "countdown_generator", "prompt_style": "paper"}},
            "arith": {"source": {"kind": "arith_choice_generator"}},
        },
    }
    with pytest.warns(FutureWarning) as warned:
        messages = update_spellings(config)
    assert config["methods"]["es"]["noise"] == "authors"
    assert config["runs"]["overrides"][0]["set"] == {"noise": "authors", "sigma": 0.1}
    assert config["tasks"]["countdown"]["source"]["prompt_style"] == "authors"
    assert messages == [str(w.message) for w in warned]
    assert messages == [
        f"methods.es.noise: {RENAMED}",
        f"runs.overrides[0].set.noise: {RENAMED}",
        f"tasks.countdown.source.prompt_style: {RENAMED}",
    ]


def test_current_spellings_and_malformed_configs_are_left_to_the_schema():
    config = {"methods": {"es": {"noise": "independent"}, "odd": "not a mapping"}, "tasks": ["a list"], "runs": 3}
    before = copy.deepcopy(config)
    assert update_spellings(config) == []
    assert config == before


def test_a_profile_in_the_old_spelling_loads_as_the_current_one(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("methods: {es: {noise: paper}}\n")
    with pytest.warns(FutureWarning, match="methods.es.noise: 'paper' is the old spelling of 'authors'"):
        config = load([str(REPO / "config" / "config.yaml"), str(old)])
    assert config["methods"]["es"]["noise"] == "authors"
