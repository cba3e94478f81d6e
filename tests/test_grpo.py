"""GRPO on TRL: the paper's VeRL settings map onto GRPOConfig as documented, impossible
batch geometries are refused, a few steps on CPU learn, and a killed run resumes exactly."""

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
import torch

from esforget import grpo, launch
from esforget.io import write_json, write_parquet
from esforget.models import load_model
from esforget.tasks.sources import build_splits


def test_the_papers_batch_geometry_is_refused_with_the_nearest_exact_settings():
    with pytest.raises(ValueError, match=r"prompts_per_minibatch=32 \(6.25 optimizer steps per rollout\).*\[25, 40\]"):
        grpo.GRPOMethodConfig(prompts_per_rollout=200, prompts_per_minibatch=32)
    with pytest.raises(ValueError, match="micro_batch_size=7"):
        grpo.GRPOMethodConfig(micro_batch_size=7)


def test_the_default_maps_the_papers_verl_run_onto_trl(tmp_path):
    cfg = grpo.GRPOMethodConfig()  # the paper's settings where TRL can express them
    trl = grpo.trl_config(cfg, tmp_path, max_new_tokens=1024, seed=33)
    assert trl.generation_batch_size == 200 * 30  # one rollout: 200 prompts × 30 replies ...
    assert trl.steps_per_generation * trl.per_device_train_batch_size == 200 * 30  # ... consumed whole
    # one optimizer step per 40-prompt mini-batch of 40 × 30 sequences, accumulated
    assert trl.per_device_train_batch_size * trl.gradient_accumulation_steps == 40 * 30
    # on 8 GPUs each accumulates 1/8 of the mini-batch
    assert grpo.trl_config(cfg, tmp_path, 1024, 33, processes=8).gradient_accumulation_steps == 40 * 30 // (30 * 8)
    assert trl.max_steps == 500 * 5 and trl.save_steps == 30 * 5
    assert (trl.learning_rate, trl.lr_scheduler_type, trl.beta, trl.epsilon) == (1e-6, "constant", 0.001, 0.2)
    assert trl.use_bias_correction_kl is False and trl.loss_type == "dapo" and trl.num_iterations == 1
    assert (trl.temperature, trl.top_p, trl.top_k, trl.max_completion_length) == (1.0, 1.0, 0, 1024)
    assert trl.vllm_importance_sampling_correction is False


ARITH = {"kind": "arith_choice_generator", "operand_range": [1, 9], "ops": ["+"], "instruction": ""}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A micro model pretrained for a second on multiple-choice sums ("Which is 3+4? 1) … 4) …"
    → the option digit): it replies with an option digit, but has not learned the sums. The
    GRPO task keeps those prompts with option 2 always the right one, a rule the model can
    pick up in a few steps from rewards alone; sampled, it is right about a quarter of the time."""
    from esforget import tiny_model
    from esforget.models import save_model

    root = tmp_path_factory.mktemp("grpo")
    data = build_splits(ARITH, {"train": 64, "validation": 64, "test": 8}, seed=0)
    for split in ("train", "validation"):
        write_parquet(data[split].with_columns(ground_truth=pl.lit("2")), root / f"{split}.parquet")
    spec = {"architecture": {"hidden_size": 32, "intermediate_size": 64, "layers": 2, "heads": 2, "max_positions": 128},
            "pretrain": {"steps": 60, "batch_size": 16, "lr": 3e-3, "final_lr": 3e-4, "answer_weight": 5.0,
                         "new_task_share": 0.0, "lazy_share": 0.0, "eval_batch_size": 64, "min_prior_accuracy": 0.0,
                         "extra_steps": 0, "max_extra_rounds": 0, "new_accuracy_range": [0, 1]}}
    task = {"scorer": "choice", "role": "prior", "max_new_tokens": 2, "train": data["train"], "validation": data["validation"]}
    model, tokenizer, _ = tiny_model.pretrain(spec, {"arith": task}, seed=0)
    save_model(model, tokenizer, root / "base")
    return root


@pytest.fixture()
def job(data_dir):
    method = {"algorithm": "grpo", "rollouts": 12, "prompts_per_rollout": 8, "prompts_per_minibatch": 4,
              "num_generations": 8, "micro_batch_size": 16, "learning_rate": 3e-3, "beta": 0.0,
              "checkpoint_every": 3, "validate_every": 3}
    return {"method_name": "grpo", "method": method, "base_dir": str(data_dir / "base"),
            "train": str(data_dir / "train.parquet"), "validation": str(data_dir / "validation.parquet"),
            "scorer": "choice", "max_new_tokens": 2, "seed": 5, "threads": 1}


def final_weights(out_dir, rollouts):
    return [p.detach() for p in load_model(out_dir / "checkpoints" / f"step{rollouts:06d}").parameters()]


def test_a_few_steps_learn_and_log_one_row_per_optimizer_step(job, tmp_path):
    out = tmp_path / "run"
    launch.train({**job, "out_dir": str(out)})

    metrics = pl.read_parquet(out / "metrics.parquet")
    assert metrics["step"].to_list() == list(range(1, 12 * 2 + 1))  # 2 mini-batches per rollout
    assert metrics["rollout"].to_list() == [r for r in range(1, 13) for _ in range(2)]
    for column in ("reward/mean", "reward/std", "loss", "grad_norm", "clip/ratio", "completion/mean_length",
                   "perf/seconds"):
        assert metrics[column].is_not_null().all(), column
    assert metrics["val/accuracy"].is_not_null().sum() == 4  # rollouts 3, 6, 9, 12
    first, last = metrics["reward/mean"].head(4).mean(), metrics["reward/mean"].tail(4).mean()
    assert last > first + 0.1, (first, last)
    base = [p.detach() for p in load_model(job["base_dir"]).parameters()]
    assert any(not torch.equal(p, q) for p, q in zip(final_weights(out, 12), base))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step{r:06d}" for r in (3, 6, 9, 12)]
    assert not (out / "partial").exists()


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(job, tmp_path):
    launch.train({**job, "out_dir": str(tmp_path / "whole")})
    out = tmp_path / "killed"
    spec = tmp_path / "killed.json"
    write_json({**job, "out_dir": str(out)}, spec)
    child = subprocess.Popen([sys.executable, "-m", "esforget.launch", str(spec)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trl_dir = out / "partial" / "trl"
    deadline = time.monotonic() + 300
    while not list(trl_dir.glob(f"checkpoint-*/{grpo.STATE_FILE}")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, "the run ended before it could be killed; make it longer"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    launch.train({**job, "out_dir": str(out)})  # what Snakemake's rerun does

    whole = pl.read_parquet(tmp_path / "whole" / "metrics.parquet").drop("perf/seconds")
    resumed = pl.read_parquet(out / "metrics.parquet").drop("perf/seconds")
    assert resumed.equals(whole)
    assert all(torch.equal(p, q) for p, q in zip(final_weights(out, 12), final_weights(tmp_path / "whole", 12)))
