"""GRPO fine-tuning on TRL's `GRPOTrainer` (a well-kept library: GRPO is not hand-written).

This module maps one GRPO method of the config onto `trl.GRPOConfig`, feeds TRL the task's
training prompts and reward, and adds three callbacks so a GRPO run produces what every run
produces: HF checkpoint directories every k steps, greedy validation with the same scorer as
the retention evaluation, and a per-step metrics table.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import torch
from transformers import TrainerCallback

from esforget.io import write_json, write_parquet
from esforget.models import load_model, load_tokenizer, save_model
from esforget.scoring import GreedyScorer
from esforget.tasks import reward_function
from esforget.checkpoints import checkpoint_name

log = logging.getLogger(__name__)


@dataclass
class GRPOMethodConfig:
    """Hyper-parameters of one GRPO method (`config.methods.<name>` with `algorithm: grpo`)."""

    steps: int = 500
    """Optimizer steps (one rollout of `prompts_per_step` prompts each)."""
    learning_rate: float = 1e-6
    """Constant learning rate (PAPER.md: 1e-6)."""
    prompts_per_step: int = 32
    """Distinct prompts per rollout and optimizer step."""
    num_generations: int = 30
    """Sampled replies per prompt, the group of GRPO's advantage (PAPER.md: 30)."""
    beta: float = 0.001
    """KL coefficient against the base model (PAPER.md: 0.001; 0 loads no reference model)."""
    epsilon: float = 0.2
    """PPO clip range (PAPER.md: 0.2)."""
    loss_type: str = "bnpo"
    """TRL loss aggregation; `bnpo` is VeRL's token-mean."""
    temperature: float = 1.0
    """Rollout sampling temperature (PAPER.md: 1.0)."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    checkpoint_every: int = 30
    """Save a checkpoint every k steps (and at the end). PAPER.md: 30."""
    validate_every: int = 10
    """Greedy validation accuracy every m steps. PAPER.md: 10."""
    validation_size: int | None = None
    """Validation items scored each time; null = the whole split."""
    generation_batch_size: int = 64
    """Prompts decoded together in greedy validation."""
    algorithm: str = field(default="grpo", repr=False)

    def __post_init__(self):
        if self.num_generations < 2:
            raise ValueError(f"num_generations={self.num_generations}: GRPO's group advantage needs at least 2")
        if self.checkpoint_every < 1 or self.validate_every < 1:
            raise ValueError(
                f"checkpoint_every={self.checkpoint_every} and validate_every={self.validate_every} must be ≥ 1"
            )


def trl_config(cfg: GRPOMethodConfig, out_dir: Path, max_new_tokens: int, seed: int):
    from trl import GRPOConfig  # heavy import

    on_gpu = torch.cuda.is_available()
    return GRPOConfig(
        output_dir=str(out_dir / "trl"),
        max_steps=cfg.steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",  # TRL's default schedule decays; VeRL's is constant
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        gradient_accumulation_steps=1,
        num_generations=cfg.num_generations,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        loss_type=cfg.loss_type,
        temperature=cfg.temperature,
        top_p=1.0,
        top_k=0,
        max_completion_length=max_new_tokens,
        max_grad_norm=cfg.max_grad_norm,
        use_cpu=not on_gpu,
        bf16=on_gpu,  # TRL defaults to bf16, which fails on CPU
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",  # checkpoints are written by CheckpointCallback in our layout
        report_to="none",
        disable_tqdm=False,
    )


class RunRecorder(TrainerCallback):
    """Checkpoints, greedy validation and the per-step metrics table of one GRPO run."""

    METRICS = {  # TRL log key → our metric name
        "reward": "reward/mean",
        "reward_std": "reward/std",
        "loss": "loss",
        "kl": "kl",
        "grad_norm": "grad_norm",
        "completions/mean_length": "completion/mean_length",
        "clip_ratio/region_mean": "clip/ratio",
        "entropy": "entropy",
    }

    def __init__(self, cfg: GRPOMethodConfig, tokenizer, validate: GreedyScorer, out_dir: Path):
        self.cfg, self.tokenizer, self.validate, self.out = cfg, tokenizer, validate, out_dir
        self.rows: dict[int, dict] = {}
        self.step_started = time.perf_counter()

    def _row(self, step: int) -> dict:
        return self.rows.setdefault(step, {"step": step})

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_started = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        row = self._row(step)
        row["perf/seconds"] = time.perf_counter() - self.step_started
        if step % self.cfg.validate_every == 0 or step == self.cfg.steps:
            model.eval()
            row["val/accuracy"] = self.validate(model).accuracy
            model.train()
        if step % self.cfg.checkpoint_every == 0 or step == self.cfg.steps:
            save_model(model, self.tokenizer, self.out / "checkpoints" / checkpoint_name(step))

    def on_log(self, args, state, control, logs=None, **kwargs):
        row = self._row(state.global_step)
        for key, name in self.METRICS.items():
            if logs and key in logs:
                row[name] = float(logs[key])

    def table(self) -> pl.DataFrame:
        columns = ["step", *self.METRICS.values(), "val/accuracy", "perf/seconds"]
        rows = [{c: self.rows[s].get(c) for c in columns} for s in sorted(self.rows) if s > 0]
        return pl.DataFrame(rows, schema={c: (pl.Int64 if c == "step" else pl.Float64) for c in columns})


def _dataset(rows: pl.DataFrame):
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": p}] for p in rows["prompt"]],
            "ground_truth": rows["ground_truth"].to_list(),
            "info": rows["info"].to_list(),
        }
    )


def _trl_reward(scorer: str):
    reward = reward_function(scorer)

    def task_reward(completions, ground_truth, info, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [reward(text, truth, json.loads(i)) for text, truth, i in zip(texts, ground_truth, info)]

    task_reward.__name__ = f"{scorer}_reward"  # TRL names the logged reward after the function
    return task_reward


def train(
    cfg: GRPOMethodConfig,
    base_dir: str | Path,
    train_rows: pl.DataFrame,
    validation_rows: pl.DataFrame,
    scorer: str,
    max_new_tokens: int,
    seed: int,
    out_dir: str | Path,
    threads: int = 1,
    stop_strings: list[str] | tuple[str, ...] = (),
) -> pl.DataFrame:
    """Run GRPO from the base model; write checkpoints and `metrics.parquet` into `out_dir`.

    `stop_strings` end the greedy validation replies; TRL's sampled rollouts run to EOS or
    `max_new_tokens`, as VeRL's do."""
    from trl import GRPOTrainer  # heavy import

    out = Path(out_dir)
    torch.set_num_threads(threads)
    model = load_model(base_dir, "float32")
    tokenizer = load_tokenizer(base_dir)
    if cfg.validation_size is not None:
        validation_rows = validation_rows.head(cfg.validation_size)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    validate = GreedyScorer(
        tokenizer, validation_rows, scorer, max_new_tokens, cfg.generation_batch_size, device, stop_strings
    )
    recorder = RunRecorder(cfg, tokenizer, validate, out)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=_trl_reward(scorer),
        args=trl_config(cfg, out, max_new_tokens, seed),
        train_dataset=_dataset(train_rows),
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    trainer.train()
    shutil.rmtree(out / "trl", ignore_errors=True)  # TRL's own output dir; we save nothing there
    metrics = recorder.table()
    write_parquet(metrics, out / "metrics.parquet")
    write_json({"seed": seed, **asdict(cfg)}, out / "run_config.json")
    return metrics
