"""A table of bad configs, each read the way the workflow reads one (the file strictly, then the
old spellings, the schema, the typed settings with their ranges and the cross-field checks:
`esforget.config.load.load`), and the message it must produce: the file, the key and the value,
in one line, before torch is imported and before any job starts."""

import copy
import subprocess
import sys

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from esforget.config.files import ConfigFileError, read
from esforget.config.load import load
from tests.shared import REPO

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def section(*path):
    """`section("methods", "es")(sigma=0)`: a change that sets those keys in that section."""

    def setting(**keys):
        def change(config):
            for key in path:
                config = config[key]
            config.update(keys)

        return change

    return setting


es, grpo = section("methods", "es"), section("methods", "grpo")
countdown = section("tasks", "countdown", "source")
pretrain, architecture = section("models", "tiny", "pretrain"), section("models", "tiny", "architecture")


BAD_SETTINGS = [
    # ES: types
    (es(sigma="0.3"), r"methods\.es\.sigma='0\.3': expected float, got str"),
    (es(iterations=4.5), r"methods\.es\.iterations=4\.5: expected int, got float"),
    (es(mirrored="false"), r"methods\.es\.mirrored='false': expected bool, got str"),
    (es(population_size=True), r"methods\.es\.population_size=True: expected int, got bool"),
    (es(prompts_per_iteration=[32]), r"methods\.es\.prompts_per_iteration=\[32\]: expected int or null"),
    (es(sigmaa=0.1), r"methods\.es: unknown key\(s\) \['sigmaa'\]"),
    # ES: ranges
    (es(sigma=0), r"methods\.es\.sigma=0: must be > 0"),
    (es(sigma=-0.3), r"methods\.es\.sigma=-0\.3: must be > 0"),
    (es(alpha=0), r"methods\.es\.alpha=0: must be > 0"),
    (es(alpha=-2.5e-2), r"methods\.es\.alpha=-0\.025: must be > 0"),
    (es(iterations=0), r"methods\.es\.iterations=0: must be ≥ 1"),
    (es(iterations=-5), r"methods\.es\.iterations=-5: must be ≥ 1"),
    (es(population_size=1), r"methods\.es\.population_size=1: must be ≥ 2"),
    (es(population_size=0), r"methods\.es\.population_size=0: must be ≥ 2"),
    (es(prompts_per_iteration=0), r"methods\.es\.prompts_per_iteration=0: must be ≥ 1"),
    (es(generation_batch_size=0), r"methods\.es\.generation_batch_size=0: must be ≥ 1"),
    (es(validation_size=-1), r"methods\.es\.validation_size=-1: must be ≥ 1"),
    (es(validation_size=0), r"methods\.es\.validation_size=0: must be ≥ 1"),
    (es(checkpoint_every=0), r"methods\.es\.checkpoint_every=0: must be ≥ 1"),
    (es(validate_every=-1), r"methods\.es\.validate_every=-1: must be ≥ 1"),
    (es(members_per_forward=0), r"methods\.es\.members_per_forward=0: must be ≥ 1"),
    # ES: choices and combinations
    (es(fitness_shaping="median"), r"methods\.es\.fitness_shaping='median': must be one of 'zscore', 'rank'"),
    (es(noise="shared"), r"methods\.es\.noise='shared': must be one of 'independent', 'authors'"),
    (es(dtype="float8"), r"methods\.es\.dtype='float8': must be one of 'float32', 'bfloat16', 'float16'"),
    (es(numerics="vllm"), r"methods\.es\.numerics='vllm': must be one of 'master', 'authors'"),
    (es(population_size=41), r"methods\.es\.mirrored=True needs an even population_size, got 41"),
    (es(numerics="authors", save_master=True), r"methods\.es\.save_master=True with numerics='authors'"),
    # ES variants: ranges and combinations
    (es(sparse_share=0), r"methods\.es\.sparse_share=0: must be > 0 and ≤ 1"),
    (es(sparse_share=1.5), r"methods\.es\.sparse_share=1\.5: must be > 0 and ≤ 1"),
    (es(step_cap=0), r"methods\.es\.step_cap=0: must be > 0"),
    (es(radius=-1.0), r"methods\.es\.radius=-1\.0: must be > 0"),
    (es(anchor_lambda=-0.5, anchor_decay="l2"), r"methods\.es\.anchor_lambda=-0\.5: must be ≥ 0"),
    (es(anchor_decay="l3"), r"methods\.es\.anchor_decay='l3': must be one of 'none', 'l1', 'l2'"),
    (es(anchor_decay="l2"), r"methods\.es\.anchor_decay='l2' with anchor_lambda=0: give both"),
    (es(anchor_lambda=10.0), r"methods\.es\.anchor_decay='none' with anchor_lambda=10: give both"),
    (es(anchor_decay="l2", anchor_lambda=5000.0), r"alpha × anchor_lambda must be < 1"),
    (es(numerics="authors", step_cap=0.5), r"methods\.es\.step_cap=0\.5 with numerics='authors'"),
    (es(noise="low_rank"), r"methods\.es\.noise='low_rank' with rank=None: a rank goes with noise 'low_rank'"),
    (es(rank=4), r"methods\.es\.noise='independent' with rank=4: a rank goes with noise 'low_rank'"),
    (es(noise="low_rank", rank=0), r"methods\.es\.rank=0: must be ≥ 1"),
    (es(low_rank_vectors="full"), r"methods\.es\.low_rank_vectors='full' with noise='independent'"),
    (es(noise="low_rank", rank=2, low_rank_vectors="some"), r"low_rank_vectors='some': must be one of"),
    (es(noise="low_rank", rank=2, sparse_share=0.5), r"methods\.es\.sparse_share=0\.5 with noise='low_rank'"),
    (es(replay_tasks=["arith"]), r"methods\.es\.replay_tasks=\['arith'\] with replay_lambda=0: give both"),
    (es(replay_lambda=0.5), r"methods\.es\.replay_tasks=\[\] with replay_lambda=0\.5: give both"),
    (es(replay_tasks="arith", replay_lambda=0.5), r"methods\.es\.replay_tasks='arith': expected a list of str"),
    (es(replay_tasks=["gsm8k"], replay_lambda=0.5), r"replay_tasks lists 'gsm8k', not defined"),
    (es(replay_tasks=["countdown"], replay_lambda=0.5), r"replay_tasks lists 'countdown', but tasks\.countdown\.role"),
    (es(replay_tasks=["arith"], replay_lambda=0.5, replay_prompts=4096), r"replay_prompts=4096, but tasks\.arith"),
    (lambda c: c["analysis"].update(compare_to="ppo"), r"analysis\.compare_to names \['ppo'\], not defined"),
    (lambda c: c["analysis"].update(plain_es="grpo"), r"analysis\.plain_es='grpo' is not an ES method"),
    # ES: sizes the splits cannot give
    (es(prompts_per_iteration=4096), r"prompts_per_iteration=4096, but tasks\.countdown\.splits\.train holds 2048"),
    (es(validation_size=257), r"validation_size=257, but tasks\.countdown\.splits\.validation holds 256"),
    # GRPO: types
    (grpo(rollouts=4.5), r"methods\.grpo\.rollouts=4\.5: expected int or null, got float"),
    (grpo(learning_rate="1e-4"), r"methods\.grpo\.learning_rate='1e-4': expected float, got str"),
    (grpo(beta=None), r"methods\.grpo\.beta=None: expected float, got NoneType"),
    # GRPO: ranges
    (grpo(learning_rate=-1e-4), r"methods\.grpo\.learning_rate=-0\.0001: must be > 0"),
    (grpo(learning_rate=0), r"methods\.grpo\.learning_rate=0: must be > 0"),
    (grpo(beta=-0.001), r"methods\.grpo\.beta=-0\.001: must be ≥ 0"),
    (grpo(epsilon=-0.2), r"methods\.grpo\.epsilon=-0\.2: must be > 0 and ≤ 1"),
    (grpo(epsilon=0), r"methods\.grpo\.epsilon=0: must be > 0 and ≤ 1"),
    (grpo(weight_decay=-0.01), r"methods\.grpo\.weight_decay=-0\.01: must be ≥ 0"),
    (grpo(rollouts=0), r"methods\.grpo\.rollouts=0: must be ≥ 1"),
    (grpo(rollouts=None, epochs=0), r"methods\.grpo\.epochs=0: must be ≥ 1"),
    (grpo(temperature=0), r"methods\.grpo\.temperature=0: must be > 0"),
    (grpo(temperature=-1.0), r"methods\.grpo\.temperature=-1\.0: must be > 0"),
    (grpo(max_grad_norm=0), r"methods\.grpo\.max_grad_norm=0: must be > 0"),
    (grpo(micro_batch_size=0), r"methods\.grpo\.micro_batch_size=0: must be ≥ 1"),
    (grpo(num_generations=1), r"methods\.grpo\.num_generations=1: must be ≥ 2"),
    (grpo(prompts_per_rollout=0), r"methods\.grpo\.prompts_per_rollout=0: must be ≥ 1"),
    (grpo(max_prompt_length=0), r"methods\.grpo\.max_prompt_length=0: must be ≥ 1"),
    (grpo(validation_batch_size=0), r"methods\.grpo\.validation_batch_size=0: must be ≥ 1"),
    (grpo(dual_clip=1.0), r"methods\.grpo\.dual_clip=1\.0: must be > 1"),
    # GRPO: choices and combinations
    (grpo(loss_type="sapo"), r"methods\.grpo\.loss_type='sapo': must be one of 'bnpo', 'dapo', 'grpo', 'dr_grpo'"),
    (grpo(compute_dtype="float16"), r"methods\.grpo\.compute_dtype='float16': must be one of"),
    (grpo(checkpoint_dtype="int8"), r"methods\.grpo\.checkpoint_dtype='int8': must be one of"),
    (grpo(prompts_per_minibatch=3), r"methods\.grpo\.prompts_per_rollout=8 is not a whole number"),
    (grpo(micro_batch_size=7), r"methods\.grpo\.micro_batch_size=7 must divide the mini-batch"),
    (grpo(dual_clip=1.1), r"methods\.grpo\.dual_clip=1\.1 must exceed 1 \+ epsilon = 1\.2"),
    (
        grpo(prompts_per_rollout=4096, prompts_per_minibatch=4096),
        r"prompts_per_rollout=4096, but tasks\.countdown\.splits\.train holds 2048",
    ),
    # the tiny model
    (architecture(heads=5), r"models\.tiny\.architecture\.hidden_size=96 is not divisible by heads=5"),
    (architecture(layers=0), r"models\.tiny\.architecture\.layers=0: must be ≥ 1"),
    (architecture(max_positions=8), r"models\.tiny\.architecture\.max_positions=8: must be ≥ 16"),
    (architecture(hidden_size=96.0), r"models\.tiny\.architecture\.hidden_size=96\.0: expected int, got float"),
    (pretrain(lr=-1), r"models\.tiny\.pretrain\.lr=-1: must be > 0"),
    (pretrain(lr="3e-3"), r"models\.tiny\.pretrain\.lr='3e-3': expected float, got str"),
    (pretrain(steps=0), r"models\.tiny\.pretrain\.steps=0: must be ≥ 1"),
    (pretrain(new_task_share=1.5), r"models\.tiny\.pretrain\.new_task_share=1\.5: must be ≥ 0 and ≤ 1"),
    (pretrain(max_extra_rounds=-1), r"models\.tiny\.pretrain\.max_extra_rounds=-1: must be ≥ 0"),
    (pretrain(new_accuracy_range=[0.3, 0.05]), r"models\.tiny\.pretrain\.new_accuracy_range=\[0\.3, 0\.05\]"),
    (pretrain(new_accuracy_range=[0.05, 2]), r"new_accuracy_range=\[0\.05, 2\]: every item must be ≥ 0 and ≤ 1"),
    # tasks
    (countdown(number_range=[1.5, 12]), r"1\.5"),
    (countdown(number_range=[-3, 12]), r"-3"),
    (countdown(number_range=[9, 1]), r"tasks\.countdown\.source\.number_range=\[9, 1\]: the low end exceeds"),
    (
        countdown(target_range=[1000, 2000]),
        r"tasks\.countdown\.source\.target_range=\[1000, 2000\]: no target in \[1000, 2000\] from 3 numbers",
    ),
    (countdown(target_range=[100, 1]), r"tasks\.countdown\.source\.target_range=\[100, 1\]: the low end exceeds"),
    (countdown(count=1), r"1 is less than the minimum of 2"),
    (countdown(ops=[]), r"should be non-empty|is too short"),
    (countdown(ops=["^"]), r"'\^' is not one of"),
    (lambda c: c["tasks"]["countdown"].update(splits={"train": 0}), r"0 is less than the minimum of 1"),
    (lambda c: c["tasks"]["countdown"].update(scorer="bleu"), r"bleu"),
    (lambda c: c["tasks"]["countdown"].update(max_new_tokens=0), r"0 is less than the minimum of 1"),
    (lambda c: c["tasks"]["countdown"].update(scorer="letter"), r"tasks\.countdown\.scorer='letter' scores no reply"),
    # names that must refer to each other
    (lambda c: c["runs"].update(tasks=["arith"]), r"runs\.tasks lists 'arith'.*not 'new'"),
    (lambda c: c["runs"].update(methods=["es", "ppo"]), r"runs\.methods names \['ppo'\], not defined"),
    (lambda c: c["runs"].update(models=["smollm2"]), r"runs\.models names \['smollm2'\], not defined"),
    (lambda c: c["evaluation"].update(tasks=["hellaswag"]), r"evaluation\.tasks names \['hellaswag'\]"),
    (lambda c: c["methods"]["es"].update(algorithm="ppo"), r"ppo"),
    (lambda c: c.update(sedes=[0]), r"sedes"),
    (lambda c: c.update(seeds=[]), r"should be non-empty|is too short"),
    (lambda c: c.update(seeds=["0"]), r"'0' is not of type 'integer'"),
    (
        lambda c: c["runs"].update(overrides=[{"match": {"task": "gsm8k"}, "set": {"beta": 0.1}}]),
        r"runs\.overrides\[0\]\.match\.task='gsm8k' is not defined",
    ),
    (
        lambda c: c["runs"].update(overrides=[{"match": {"method": "grpo"}, "set": {"beta": -1}}]),
        r"methods\.grpo \(model tiny, task countdown\)\.beta=-1: must be ≥ 0",
    ),
]


@pytest.mark.parametrize("mutate, message", BAD_SETTINGS)
def test_a_bad_setting_is_refused_naming_its_key_and_value(tmp_path, mutate, message):
    config = copy.deepcopy(DEFAULT)
    mutate(config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises((ValueError, WorkflowError), match=message) as refused:
        load(["config.yaml"], tmp_path_with_schema(tmp_path))
    assert "\n" not in str(refused.value).strip() or isinstance(refused.value, WorkflowError)


BAD_FILES = [
    (b"seeds: [0, 1\n", r"config\.yaml, line 2, column 1: not valid YAML"),
    (b"seeds: [0]\nmethods:\n  es: {sigma: 1\n", r"config\.yaml, line \d+, column \d+: not valid YAML"),
    (b"seeds:\n\t- 0\n", r"config\.yaml, line 2, column 1: not valid YAML"),
    (b"seeds: [0]\nseeds: [1]\n", r"config\.yaml, line 2: key 'seeds' given twice \(first on line 1\)"),
    (b"methods:\n  es:\n    sigma: 0.1\n    sigma: 0.2\n", r"line 4: key 'sigma' given twice \(first on line 3\)"),
    (b"- 0\n- 1\n", r"config\.yaml: expected a mapping of settings at the top level, got list"),
    (b"just text\n", r"config\.yaml: expected a mapping of settings at the top level, got str"),
    (b"seeds: [0]\n# caf\xe9\n", r"config\.yaml, line 2: not UTF-8 text \(byte 0xe9\)"),
    (b"? [a, b]\n: 1\n", r"config\.yaml, line 1, column 3: not valid YAML: found unhashable key"),
]


@pytest.mark.parametrize("text, message", BAD_FILES)
def test_a_file_that_is_no_mapping_of_settings_is_named_with_its_line(tmp_path, text, message):
    (tmp_path / "config.yaml").write_bytes(text)
    with pytest.raises(ConfigFileError, match=message):
        load(["config.yaml"], tmp_path)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigFileError, match=r"nowhere\.yaml: no such config file"):
        load(["nowhere.yaml"], tmp_path)


def test_an_empty_file_adds_nothing_to_the_files_before_it(tmp_path):
    (tmp_path / "empty.yaml").write_text("# only a comment\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(DEFAULT))
    root = tmp_path_with_schema(tmp_path)
    assert load(["config.yaml", "empty.yaml"], root)["seeds"] == DEFAULT["seeds"]


def test_an_override_that_matches_no_run_warns_that_it_changes_nothing(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["runs"]["overrides"] = [{"match": {"method": "grpo", "task": "arith"}, "set": {"beta": 0.1}}]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.warns(UserWarning, match=r"runs\.overrides\[0\]\.match=.* matches no run.*changes nothing"):
        load(["config.yaml"], tmp_path_with_schema(tmp_path))


def test_the_checks_run_before_torch_is_imported():
    probe = (
        "import sys; from esforget.config.load import load; load(['config/config.yaml'], '.'); "
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def tmp_path_with_schema(tmp_path):
    """`tmp_path` as a root that also holds the repository's schema."""
    schema = tmp_path / "workflow" / "schemas" / "config.schema.yaml"
    schema.parent.mkdir(parents=True, exist_ok=True)
    if not schema.exists():
        schema.symlink_to(REPO / "workflow" / "schemas" / "config.schema.yaml")
    return tmp_path


@pytest.mark.parametrize(
    "text, message",
    [
        (
            yaml.safe_dump(
                {**DEFAULT, "methods": {**DEFAULT["methods"], "es": {**DEFAULT["methods"]["es"], "sigma": 0}}}
            ),
            "Config refused: methods.es.sigma=0: must be > 0",
        ),
        ("seeds: [0]\nseeds: [1]\n", "Config refused: {path}, line 2: key 'seeds' given twice (first on line 1)"),
    ],
)
def test_snakemake_prints_the_refusal_as_one_line_without_a_traceback(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/config.yaml", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert message.format(path=path) in done.stderr
    assert "Traceback" not in done.stderr and 'File "' not in done.stderr


def test_the_check_command_names_the_file_and_line_of_a_yaml_syntax_error(tmp_path):
    """Snakemake reads a `--configfile` before the workflow does and words a YAML syntax error
    without the file or the line; the check command that config/README.md points to names both."""
    path = tmp_path / "bad.yaml"
    path.write_text("methods:\n  es:\n    sigma: [0.1\n")
    command = [sys.executable, "-m", "esforget.config.load", "config/config.yaml", str(path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Config refused: {path}, line 4, column 1: not valid YAML")
    assert "Traceback" not in done.stderr
    accepted = subprocess.run(command[:-1], cwd=REPO, capture_output=True, text=True, check=True)
    assert accepted.stdout.strip() == "Config accepted: config/config.yaml"


def test_a_merge_key_brings_its_anchors_settings_and_the_mappings_own_override_them(tmp_path):
    """`<<: *es_base` is YAML, and Snakemake reads it: not a key given twice."""
    (tmp_path / "config.yaml").write_text(
        "methods:\n  a: &base\n    sigma: 0.1\n    alpha: 0.2\n  b:\n    <<: *base\n    sigma: 0.3\n"
        "  c:\n    <<: *base\n    alpha: 0.4\n    alpha: 0.5\n"
    )
    with pytest.raises(ConfigFileError, match=r"line 11: key 'alpha' given twice \(first on line 10\)"):
        read(tmp_path / "config.yaml")
    (tmp_path / "config.yaml").write_text("methods:\n  a: &base\n    sigma: 0.1\n  b:\n    <<: *base\n    alpha: 0.3\n")
    assert read(tmp_path / "config.yaml")["methods"]["b"] == {"sigma": 0.1, "alpha": 0.3}
