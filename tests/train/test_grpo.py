"""GRPO on TRL: the paper's VeRL settings map onto GRPOConfig as documented, impossible
batch geometries are refused, a few steps on CPU learn, and a killed run resumes exactly."""

import json

import polars as pl
import pytest
import torch

from esforget.core.files import write_parquet
from esforget.core.models import load_model
from esforget.data.sources import build_splits
from esforget.train import grpo, launch
from esforget.train.finite import NonFiniteTraining
from tests.train.specs import launch_spec
from tests.train.staged_kill import killed_and_resumed
from tests.train.test_live_metrics import scalars


def test_the_papers_batch_geometry_is_refused_with_the_nearest_exact_settings():
    with pytest.raises(ValueError, match=r"prompts_per_minibatch=32 \(6.25 optimizer steps per rollout\).*\[25, 40\]"):
        grpo.GRPOMethodConfig(prompts_per_rollout=200, prompts_per_minibatch=32)
    with pytest.raises(ValueError, match="micro_batch_size=7"):
        grpo.GRPOMethodConfig(micro_batch_size=7)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"learning_rate": -1e-6}, "learning_rate=-1e-06: must be > 0"),
        ({"beta": -0.001}, "beta=-0.001: must be ≥ 0"),
        ({"epsilon": -0.2}, "epsilon=-0.2: must be > 0 and ≤ 1"),
        ({"rollouts": 0}, "rollouts=0: must be ≥ 1"),
        ({"temperature": 0}, "temperature=0: must be > 0"),
        ({"micro_batch_size": 0}, "micro_batch_size=0: must be ≥ 1"),
        ({"num_generations": 1}, "num_generations=1: must be ≥ 2"),
        ({"loss_type": "sapo"}, "loss_type='sapo': must be one of 'bnpo', 'dapo', 'grpo', 'dr_grpo'"),
        ({"checkpoint_dtype": "int8"}, "checkpoint_dtype='int8': must be one of 'float32', 'bfloat16', 'float16'"),
        ({"dual_clip": 1.1}, r"dual_clip=1.1 must exceed 1 \+ epsilon = 1.2"),
    ],
)
def test_a_setting_out_of_its_range_is_refused_naming_it(keys, message):
    with pytest.raises(ValueError, match=message):
        grpo.GRPOMethodConfig(**keys)


def test_the_default_maps_the_papers_verl_run_onto_trl(tmp_path):
    cfg = grpo.GRPOMethodConfig()  # the paper's settings where TRL can express them
    trl = grpo.trl_config(cfg, tmp_path, max_new_tokens=1024, seed=33, rollouts=cfg.total_rollouts(200))
    assert trl.generation_batch_size == 200 * 30  # one rollout: 200 prompts × 30 replies ...
    assert trl.steps_per_generation * trl.per_device_train_batch_size == 200 * 30  # ... consumed whole
    # one optimizer step per 25-prompt mini-batch of 25 × 30 sequences, in micro-batches of 5
    assert trl.per_device_train_batch_size == 5
    assert trl.per_device_train_batch_size * trl.gradient_accumulation_steps == 25 * 30
    # on the authors' 2 GPUs each accumulates half of the mini-batch
    assert grpo.trl_config(cfg, tmp_path, 1024, 33, 500, processes=2).gradient_accumulation_steps == 25 * 30 // (5 * 2)
    assert trl.max_steps == 500 * 8 and trl.save_steps == 30 * 8  # 500 epochs of one 200-prompt rollout
    assert (trl.learning_rate, trl.lr_scheduler_type, trl.beta, trl.epsilon) == (1e-6, "constant", 0.001, 0.2)
    assert trl.delta == 3.0  # VeRL's dual clip: the unclipped ratio capped at 3
    assert trl.use_bias_correction_kl is False and trl.loss_type == "bnpo" and trl.num_iterations == 1
    assert (trl.temperature, trl.top_p, trl.top_k, trl.max_completion_length) == (1.0, 1.0, 0, 1024)
    assert trl.vllm_importance_sampling_correction is False


def test_epochs_count_rollouts_over_the_prompts_left_after_filtering():
    assert grpo.GRPOMethodConfig(epochs=3, prompts_per_rollout=4, prompts_per_minibatch=4).total_rollouts(10) == 6
    assert grpo.GRPOMethodConfig(rollouts=7, prompts_per_rollout=4, prompts_per_minibatch=4).total_rollouts(10) == 7


def test_overlong_prompts_are_dropped_before_training_and_counted(micro_model_dir, caplog):
    from esforget.core.models import chat_prompt_ids, load_tokenizer
    from esforget.tasks import make_frame

    tokenizer = load_tokenizer(micro_model_dir)
    rows = make_frame([{"id": str(n), "prompt": "x" * n, "ground_truth": "1", "info": {}} for n in (5, 40, 10, 80)])
    limit = len(chat_prompt_ids(tokenizer, ["x" * 10])[0])  # the chat template counts, as in VeRL
    with caplog.at_level("INFO", logger="esforget.train.grpo"):
        kept = grpo.drop_overlong(rows, tokenizer, limit)
    assert kept["id"].to_list() == ["5", "10"]
    assert "dropped 2 of 4 training prompts" in caplog.text
    assert grpo.drop_overlong(rows, tokenizer, None).equals(rows)


ARITH = {"kind": "arith_choice_generator", "operand_range": [1, 9], "ops": ["+"], "instruction": ""}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A micro model pretrained for a second on multiple-choice sums ("Which is 3+4? 1) … 4) …"
    → the option digit): it replies with an option digit, but has not learned the sums. The
    GRPO task keeps those prompts with option 2 always the right one, a rule the model can
    pick up in a few steps from rewards alone; sampled, it is right about a quarter of the time."""
    from esforget.base import tiny
    from esforget.base.tiny_config import PretrainConfig, TinyArchitecture
    from esforget.core.models import save_model

    root = tmp_path_factory.mktemp("grpo")
    data = build_splits(ARITH, {"train": 64, "validation": 64, "test": 8}, seed=0)
    for split in ("train", "validation"):
        write_parquet(data[split].with_columns(ground_truth=pl.lit("2")), root / f"{split}.parquet")
    spec = {
        "architecture": {"hidden_size": 32, "intermediate_size": 64, "layers": 2, "heads": 2, "max_positions": 128},
        "pretrain": {
            "steps": 60,
            "batch_size": 16,
            "lr": 3e-3,
            "final_lr": 3e-4,
            "answer_weight": 5.0,
            "new_task_share": 0.0,
            "lazy_share": 0.0,
            "eval_batch_size": 64,
            "min_prior_accuracy": 0.0,
            "extra_steps": 1,
            "max_extra_rounds": 0,
            "new_accuracy_range": [0, 1],
        },
    }
    task = {
        "scorer": "choice",
        "role": "prior",
        "max_new_tokens": 2,
        "train": data["train"],
        "validation": data["validation"],
    }
    arch, pretrain = TinyArchitecture(**spec["architecture"]), PretrainConfig(**spec["pretrain"])
    model, tokenizer, _ = tiny.pretrain(arch, pretrain, {"arith": task}, seed=0)
    save_model(model, tokenizer, root / "base")
    return root


@pytest.fixture()
def job(data_dir):
    method = {
        "algorithm": "grpo",
        "rollouts": 12,
        "prompts_per_rollout": 8,
        "prompts_per_minibatch": 4,
        "num_generations": 8,
        "micro_batch_size": 16,
        "learning_rate": 3e-3,
        "beta": 0.0,
        "checkpoint_every": 3,
        "validate_every": 3,
    }
    return launch_spec(method, data_dir / "base", data_dir, "choice", max_new_tokens=2, seed=5)


def final_weights(out_dir, rollouts):
    return [p.detach() for p in load_model(out_dir / "checkpoints" / f"step{rollouts:06d}").parameters()]


def test_a_few_steps_learn_and_log_one_row_per_optimizer_step(job, tmp_path):
    out = tmp_path / "run"
    launch.train({**job, "out_dir": str(out), "report_to": ["tensorboard"]})

    metrics = pl.read_parquet(out / "metrics.parquet")
    assert metrics["step"].to_list() == list(range(1, 12 * 2 + 1))  # 2 mini-batches per rollout
    assert metrics["rollout"].to_list() == [r for r in range(1, 13) for _ in range(2)]
    for column in (
        "reward/mean",
        "reward/std",
        "loss",
        "grad_norm",
        "clip/ratio",
        "completion/mean_length",
        "perf/seconds",
    ):
        assert metrics[column].is_not_null().all(), column
    assert metrics["val/accuracy"].is_not_null().sum() == 4  # rollouts 3, 6, 9, 12
    first, last = metrics["reward/mean"].head(4).mean(), metrics["reward/mean"].tail(4).mean()
    assert last > first + 0.1, (first, last)
    base = [p.detach() for p in load_model(job["base_dir"]).parameters()]
    assert any(not torch.equal(p, q) for p, q in zip(final_weights(out, 12), base, strict=True))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step{r:06d}" for r in (3, 6, 9, 12)]
    assert not (out / "partial").exists()
    # watched live: our rows in tensorboard/, TRL's own logs in tensorboard/trl/
    shown = scalars(out)
    assert shown["loss"] == [(s, pytest.approx(v)) for s, v in zip(metrics["step"], metrics["loss"], strict=True)]
    first_steps = metrics.filter(pl.col("step") % 2 == 1)  # a rollout's figures: with its first step
    assert shown["reward/mean"] == [
        (s, pytest.approx(v)) for s, v in zip(first_steps["step"], first_steps["reward/mean"], strict=True)
    ]
    assert any((out / "tensorboard" / "trl").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("decay_all", [True, False])
def test_one_step_without_reward_signal_only_decays_and_is_stored_rounded_to_bf16(job, tmp_path, decay_all):
    """A reward that never varies gives zero advantages, so the one optimizer step leaves only
    AdamW's decoupled decay, θ·(1 − lr·wd): on every parameter as in VeRL, or on all but the
    norm weights under the Trainer's rule. The checkpoint stores that θ rounded to bf16, and its
    fp32 master beside it."""
    from safetensors.torch import load_file

    train = pl.read_parquet(job["train"]).with_columns(ground_truth=pl.lit("9"))  # no option 9: reward 0
    write_parquet(train, tmp_path / "train.parquet")
    lr, wd = 0.1, 0.5
    method = {
        **job["method"],
        "rollouts": 1,
        "prompts_per_minibatch": 8,
        "micro_batch_size": 64,
        "learning_rate": lr,
        "weight_decay": wd,
        "decay_all_parameters": decay_all,
        "checkpoint_every": 1,
        "validate_every": 1,
        "checkpoint_dtype": "bfloat16",
        "save_master": True,
    }
    out = tmp_path / "run"
    launch.train({**job, "method": method, "train": str(tmp_path / "train.parquet"), "out_dir": str(out)})

    checkpoint = out / "checkpoints" / "step000001"
    master = load_file(str(checkpoint / "master" / "model.safetensors"))
    stored = load_file(str(checkpoint / "model.safetensors"))
    base = {n: p.detach() for n, p in load_model(job["base_dir"]).named_parameters()}
    assert set(master) == set(stored) == set(base)
    for name, before in base.items():
        decayed = decay_all or "norm" not in name
        expected = before * (1 - lr * wd) if decayed else before
        torch.testing.assert_close(master[name], expected, rtol=1e-6, atol=0)
        assert stored[name].dtype == torch.bfloat16 and torch.equal(stored[name], master[name].to(torch.bfloat16))
    assert any("norm" in name for name in base)
    assert json.loads((checkpoint / "config.json").read_text())["dtype"] == "bfloat16"


def test_passes_compute_in_bf16_only_where_asked_and_the_cpu_has_native_kernels(monkeypatch):
    monkeypatch.setattr(grpo, "has_native_bf16", lambda device: True)
    assert [grpo.computed_in(d, "cpu") for d in ("auto", "float32", "bfloat16")] == ["float32", "float32", "bfloat16"]
    monkeypatch.setattr(grpo, "has_native_bf16", lambda device: False)  # emulated bf16 is slower than fp32
    assert grpo.computed_in("bfloat16", "cpu") == "float32"
    with pytest.raises(ValueError, match="compute_dtype='float16'"):
        grpo.GRPOMethodConfig(compute_dtype="float16")


@pytest.mark.parametrize("native", [True, False])
def test_a_bf16_run_autocasts_its_training_passes_keeps_an_fp32_master_and_records_it(
    job, tmp_path, monkeypatch, native
):
    """`compute_dtype: bfloat16` on a CPU with (or, faked, without) native bf16 kernels: the
    linear layers of TRL's passes return bf16 (greedy validation stays fp32), the weights
    trained and stored stay fp32, and run_config.json says what the passes computed in."""
    monkeypatch.setattr(grpo, "has_native_bf16", lambda device: native)
    seen = set()

    def load_watched(path, dtype):
        model = load_model(path, dtype)
        linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        linear.register_forward_hook(lambda module, args, output: seen.add(output.dtype))
        return model

    monkeypatch.setattr(grpo, "load_model", load_watched)
    method = {**job["method"], "rollouts": 1, "checkpoint_every": 1, "validate_every": 1, "compute_dtype": "bfloat16"}
    out = tmp_path / "run"
    launch.train({**job, "method": method, "out_dir": str(out)})

    assert seen == ({torch.bfloat16, torch.float32} if native else {torch.float32})
    assert all(p.dtype == torch.float32 for p in final_weights(out, 1))
    recorded = json.loads((out / "run_config.json").read_text())
    assert recorded["compute_dtype"] == "bfloat16"
    assert recorded["computed_in"] == ("bfloat16 autocast, fp32 master" if native else "float32")


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(job, tmp_path, caplog):
    """Killed right after its first state (rollout 3), the rerun continues from there."""
    whole, resumed = killed_and_resumed(job, tmp_path, caplog, step=3)
    metrics = [pl.read_parquet(run / "metrics.parquet").drop("perf/seconds") for run in (whole, resumed)]
    assert metrics[1].equals(metrics[0])
    pairs = zip(final_weights(resumed, 12), final_weights(whole, 12), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)


def test_a_step_that_leaves_a_weight_non_finite_stops_the_run_and_publishes_nothing(job, tmp_path):
    # AdamW moves each weight by about the learning rate: 1e39 is beyond fp32's range
    method = {**job["method"], "rollouts": 1, "checkpoint_every": 1, "validate_every": 1, "learning_rate": 1e39}
    out = tmp_path / "run"
    with pytest.raises(NonFiniteTraining, match=r"GRPO step 1 \(learning_rate=1e\+39\): parameter model\.\S+ holds"):
        launch.train({**job, "method": method, "out_dir": str(out)})
    assert not (out / "metrics.parquet").exists() and not (out / "checkpoints").exists()
