"""Bad configs fail before any job starts, with a message naming the key or value."""

import copy
from pathlib import Path

import polars as pl
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from esforget.config.checks import check
from tests.shared import REPO

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("path", ["config/config.yaml", "config/smollm2.yaml", "tests/e2e/config.yaml"])
def test_shipped_configs_are_valid(path):
    cfg = yaml.safe_load((REPO / path).read_text())
    validate(copy.deepcopy(cfg), SCHEMA)
    check(cfg)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(sedes=[0]), "sedes"),
        (lambda c: c["tasks"]["countdown"].update(scorer="bleu"), "bleu"),
        (lambda c: c["tasks"]["countdown"]["source"].update(number_range=[1.5, 12]), r"1\.5"),
        (lambda c: c["tasks"]["arith"]["source"].update(operand_range=[-3, 9]), "-3"),
        (lambda c: c["methods"]["es"].update(algorithm="ppo"), "ppo"),
    ],
)
def test_schema_names_the_bad_key_or_value(config, mutate, message):
    mutate(config)
    with pytest.raises(WorkflowError, match=message):
        validate(config, SCHEMA)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["methods"]["es"].update(sigmaa=0.1), r"methods\.es: unknown key\(s\) \['sigmaa'\]"),
        (
            lambda c: c["methods"]["es"].update(mirrored="false"),
            r"methods\.es\.mirrored='false': expected bool, got str",
        ),
        (lambda c: c["methods"]["grpo"].update(rollouts=4.5), r"methods\.grpo\.rollouts=4\.5: expected int or null"),
        (lambda c: c["models"]["tiny"]["pretrain"].update(lr=-1), r"models\.tiny\.pretrain\.lr=-1: must be > 0"),
        (
            lambda c: c["models"]["tiny"]["pretrain"].update(lr="3e-3"),  # YAML 1.1 reads 3e-3 as a string
            r"models\.tiny\.pretrain\.lr='3e-3': expected float, got str",
        ),
        (
            lambda c: c["models"]["tiny"]["pretrain"].pop("steps"),
            r"models\.tiny\.pretrain: missing key\(s\) \['steps'\]",
        ),
        (
            lambda c: c["models"]["tiny"]["architecture"].update(heads=5),
            r"models\.tiny\.architecture\.hidden_size=96 is not divisible by heads=5",
        ),
        (
            lambda c: c["models"]["tiny"]["architecture"].update(width=8),
            r"models\.tiny\.architecture: unknown key\(s\) \['width'\]",
        ),
        (lambda c: c["methods"]["es"].update(mirrored=True, population_size=7), "got 7"),
        (lambda c: c["runs"].update(tasks=["arith"]), "'arith'.*not 'new'"),
        (lambda c: c["evaluation"].update(tasks=["hellaswag"]), r"evaluation\.tasks names \['hellaswag'\]"),
        (
            lambda c: c["tasks"]["countdown"].update(source={"kind": "verl_parquet", "path": "/nowhere"}),
            "/nowhere/train.parquet",
        ),
        (lambda c: c["tasks"]["countdown"].update(scorer="letter"), "tasks.countdown.scorer='letter' scores no reply"),
        (
            lambda c: c["tasks"]["countdown"]["source"].update(number_range=[9, 1]),
            r"tasks\.countdown\.source\.number_range=\[9, 1\]: the low end exceeds the high end",
        ),
    ],
)
def test_cross_field_checks_quote_the_values(config, mutate, message):
    mutate(config)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check(config)


def test_overrides_set_method_keys_per_model_and_task_later_entries_winning(config):
    from esforget.config.runs import method_for_run

    config["runs"]["overrides"] = [
        {"match": {"method": "grpo"}, "set": {"learning_rate": 1e-5}},
        {
            "match": {"method": "grpo", "task": "countdown", "model": "tiny"},
            "set": {"learning_rate": 2e-5, "beta": 0.1},
        },
        {"match": {"task": "arith"}, "set": {"learning_rate": 9.0}},  # matches no run
    ]
    validate(copy.deepcopy(config), SCHEMA)
    with pytest.warns(UserWarning, match=r"runs\.overrides\[2\]\.match=\{'task': 'arith'\} matches no run"):
        check(config)
    resolved = method_for_run(config, "tiny", "grpo", "countdown")
    assert (resolved["learning_rate"], resolved["beta"]) == (2e-5, 0.1)
    assert method_for_run(config, "tiny", "es", "countdown") == config["methods"]["es"]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"match": {"task": "gsm8k"}, "set": {"beta": 0.1}}, r"runs.overrides\[0\].match.task='gsm8k' is not defined"),
        ({"match": {"method": "grpo"}, "set": {"algorithm": "es"}}, r"runs.overrides\[0\].set: a run cannot change"),
        (
            {"match": {"method": "grpo", "model": "tiny"}, "set": {"prompts_per_minibatch": 3}},
            r"methods.grpo \(model tiny, task countdown\)\.prompts_per_rollout=8 is not a whole number",
        ),
    ],
)
def test_a_bad_override_is_named(config, override, message):
    config["runs"]["overrides"] = [override]
    with pytest.raises(ValueError, match=message):
        check(config)


def test_the_precision_profile_layers_over_the_default(config):
    from snakemake.utils import update_config

    from esforget.config.runs import method_for_run
    from esforget.train.methods import method_config

    update_config(config, yaml.safe_load((REPO / "config" / "precision.yaml").read_text()))
    validate(copy.deepcopy(config), SCHEMA)
    check(config)
    assert config["runs"]["methods"] == [
        "es",
        "grpo",
        "es_fp16_authors",
        "es_fp16_master",
        "es_fp16_authors_paper_steps",
        "grpo_bf16",
    ]
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["methods"]
    # each variant is the default's method with only its precision changed
    for name, base, precision in (
        ("es_fp16_authors", "es", {"dtype": "float16", "numerics": "authors"}),
        ("es_fp16_master", "es", {"dtype": "float16", "numerics": "master", "save_master": True}),
        ("grpo_bf16", "grpo", {"checkpoint_dtype": "bfloat16", "save_master": True}),
    ):
        assert method_for_run(config, "tiny", name, "countdown") == {**default[base], **precision}
        method_config(name, config["methods"][name])


def test_the_bf16_passes_profile_adds_the_smollm2_grpo_with_only_its_compute_dtype_changed():
    from snakemake.utils import update_config

    from esforget.config.runs import method_for_run
    from esforget.train.methods import method_config

    config = yaml.safe_load((REPO / "config" / "smollm2.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "smollm2-bf16.yaml").read_text()))
    validate(copy.deepcopy(config), SCHEMA)
    check(config)
    assert config["runs"]["methods"] == ["es", "grpo", "grpo_bf16_passes"] and config["seeds"] == [0]
    profile = yaml.safe_load((REPO / "config" / "smollm2.yaml").read_text())["methods"]
    added = method_for_run(config, "smollm2-135m", "grpo_bf16_passes", "multiply")
    assert added == {**profile["grpo"], "compute_dtype": "bfloat16"}
    assert method_config("grpo_bf16_passes", added).compute_dtype == "bfloat16"


def test_the_one_seed_layer_keeps_a_profile_and_runs_its_seed_0():
    from esforget.config.load import load

    for profile in ("config/config.yaml", "config/smollm2.yaml"):
        assert load([profile, "config/one-seed.yaml"], REPO) == {**load([profile], REPO), "seeds": [0]}


def test_the_conda_environment_is_pyprojects_dependencies_with_no_path_to_resolve():
    """Snakemake copies an env file into .snakemake/conda/ before creating it, so it may hold
    no relative path; its dependencies are generated from pyproject.toml (conda channels are
    not reachable here, so the environment itself is not built in the tests)."""
    import subprocess
    import sys
    import tomllib

    check = subprocess.run(
        [sys.executable, str(REPO / "envs" / "make_env.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    env = yaml.safe_load((REPO / "envs" / "esforget.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == project["dependencies"] + project["optional-dependencies"]["gguf"]
    assert f"python={project['requires-python'].removeprefix('>=')}" in env["dependencies"]
    assert not [entry for entry in pip if entry.startswith(("-e", ".", "/", "file:"))]


def test_a_split_not_prepared_from_this_config_is_refused_naming_what_differs(tmp_path):
    from esforget.core.files import write_parquet
    from esforget.data.prepare import check_prepared, prepare_task
    from tests.shared import MICRO_COUNTDOWN

    task = {"source": MICRO_COUNTDOWN, "splits": {"train": 8, "validation": 4, "test": 4}}
    prepare_task(task, seed=7, out_dir=tmp_path)
    split = tmp_path / "train.parquet"
    check_prepared(split, task, 7)

    with pytest.raises(ValueError, match=r"train.parquet was prepared with data_seed=7, the config has 8"):
        check_prepared(split, task, 8)
    wider = {**task, "source": {**MICRO_COUNTDOWN, "number_range": [1, 12]}}
    with pytest.raises(ValueError, match=r"\['number_range'\] differ \(\[\[1, 9\]\] in its manifest, \[\[1, 12\]\]"):
        check_prepared(split, wider, 7)
    write_parquet(pl.read_parquet(split).head(3), split)  # bytes its manifest never hashed
    with pytest.raises(ValueError, match="train.parquet does not hold the data its manifest records"):
        check_prepared(split, task, 7)


def test_the_schema_offers_exactly_the_countdown_prompt_templates_there_are():
    from esforget.tasks.countdown import PROMPT_TEMPLATES

    definitions = yaml.safe_load(Path(SCHEMA).read_text())["definitions"]
    assert sorted(definitions["prompt_style"]["enum"]) == sorted(PROMPT_TEMPLATES)


def test_the_variants_profile_changes_only_each_variants_own_keys_from_the_defaults_es():
    from esforget.config.load import load

    config = load(["config/config.yaml", "config/variants.yaml"], REPO)
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["methods"]
    assert config["methods"]["es"] == default["es"]  # the anchor is the default's ES
    changed = {
        "es_lowrank1": {"noise": "low_rank", "rank": 1},
        "es_lowrank4": {"noise": "low_rank", "rank": 4},
        "es_lowrank16": {"noise": "low_rank", "rank": 16},
        "es_awd_small": {"anchor_decay": "l2", "anchor_lambda": 0.2},
        "es_awd_large": {"anchor_decay": "l2", "anchor_lambda": 0.8},
        "es_sparse": {"sparse_share": 0.25},
        "es_capped": {"step_cap": 0.35},
        "es_replay": {"replay_tasks": ["arith"], "replay_lambda": 1.0, "replay_prompts": 16},
        "es_n20": {"population_size": 20, "members_per_forward": 10},
        "es_n80": {"population_size": 80},
    }
    for name, keys in changed.items():
        assert config["methods"][name] == {**default["es"], **keys}, name
    assert config["methods"]["grpo_kl"] == {**default["grpo"], "beta": 0.04}
    assert config["runs"]["methods"] == ["es", *changed, "grpo", "grpo_kl"]
    assert config["seeds"] == [0, 1, 2] and config["analysis"]["compare_to"] == "grpo"
    assert config["analysis"]["plain_es"] == "es"
