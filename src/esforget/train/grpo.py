"""GRPO fine-tuning on TRL's `GRPOTrainer` (a well-kept library: GRPO is not hand-written).

This module maps one GRPO method of the config onto `trl.GRPOConfig` (field by field against
the authors' VeRL run in docs/grpo_mapping.md), feeds TRL the task's training prompts and
reward, and adds one callback so that a GRPO run produces what every run produces: HF
checkpoint directories, greedy validation with the same scorer as the retention evaluation,
a per-step metrics table, and a state a killed run resumes from.

Vocabulary, as in VeRL: a *rollout* samples `num_generations` replies to each of
`prompts_per_rollout` prompts; it is then consumed in mini-batches of `prompts_per_minibatch`
prompts, one optimizer step each. Checkpoints are named and scheduled by rollout (VeRL's
"step"); the metrics table has one row per optimizer step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import polars as pl
import torch
from transformers import TrainerCallback

from esforget.core.checkpoints import checkpoint_name, partial_dir, publish, run_fingerprint
from esforget.core.models import (
    chat_prompt_ids,
    device_name,
    has_native_bf16,
    load_model,
    load_tokenizer,
    save_model,
)
from esforget.decoding.greedy_scorer import GreedyScorer
from esforget.tasks import reward_function
from esforget.train import finite, resume
from esforget.train.grpo_config import GRPOMethodConfig
from esforget.train.job import TrainingJob
from esforget.train.live_metrics import LiveMetrics, tensorboard_dir

log = logging.getLogger(__name__)


_PRECISION = {"bfloat16": "bfloat16 autocast, fp32 master", "float32": "float32"}
"""What run_config.json records as `computed_in`, by the passes' dtype."""


def computed_in(compute_dtype: str, device: str) -> str:
    """The dtype the forward and backward passes compute in for `compute_dtype` on `device`
    (`GRPOMethodConfig.compute_dtype`)."""
    on_gpu = torch.device(device).type == "cuda"
    wanted = compute_dtype == "bfloat16" or (compute_dtype == "auto" and on_gpu)
    if wanted and not has_native_bf16(device):
        log.warning("compute_dtype=%s: %s has no native bf16 kernels; computing in float32", compute_dtype, device)
        return "float32"
    return "bfloat16" if wanted else "float32"


def trl_config(
    cfg: GRPOMethodConfig,
    work: Path,
    max_new_tokens: int,
    seed: int,
    rollouts: int,
    processes: int = 1,
    report_to: tuple[str, ...] = (),
    bf16: bool = False,
):
    """The `trl.GRPOConfig` of this method for `rollouts` rollouts. Saves happen at rollout boundaries only
    (`checkpoint_every` is counted in rollouts), the one point a resumed run can continue
    bit-identically: no half-consumed rollout is left in TRL's generation buffer."""
    from trl import GRPOConfig  # heavy import

    sequences = cfg.prompts_per_minibatch * cfg.num_generations
    if sequences % (cfg.micro_batch_size * processes):
        raise ValueError(
            f"a mini-batch of {sequences} sequences does not split into micro-batches of "
            f"micro_batch_size={cfg.micro_batch_size} on {processes} processes"
        )
    return GRPOConfig(
        output_dir=str(work / "trl"),
        max_steps=rollouts * cfg.steps_per_rollout,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",  # TRL's default schedule decays; VeRL's is constant
        warmup_steps=0,
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=sequences // (cfg.micro_batch_size * processes),
        generation_batch_size=cfg.prompts_per_rollout * cfg.num_generations,
        num_generations=cfg.num_generations,
        num_iterations=1,  # one pass over each rollout, as VeRL's ppo_epochs 1
        beta=cfg.beta,
        use_bias_correction_kl=False,  # VeRL's k3 KL has no importance-ratio factor
        epsilon=cfg.epsilon,
        delta=cfg.dual_clip,
        loss_type=cfg.loss_type,
        temperature=cfg.temperature,
        top_p=1.0,
        top_k=0,
        max_completion_length=max_new_tokens,
        max_grad_norm=cfg.max_grad_norm,
        gradient_checkpointing=cfg.gradient_checkpointing,
        use_vllm=cfg.use_vllm,
        vllm_importance_sampling_correction=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=bf16,  # autocast the passes to bf16 (`computed_in`); TRL defaults to True
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        logging_nan_inf_filter=False,  # the Trainer would log a NaN loss as the mean of the last ones
        save_strategy="steps",
        save_steps=cfg.checkpoint_every * cfg.steps_per_rollout,
        report_to=list(report_to) or "none",
        disable_tqdm=False,
    )


# --- resumable state ------------------------------------------------------------------------
#
# TRL (the HF Trainer) saves `partial/trl/checkpoint-N` with optimizer, scheduler and RNG
# states, but not atomically. After it returns, `RunRecorder.on_save` completes it as a
# resumable state (`esforget.train.resume`): only a checkpoint so completed is resumed from.

COLUMNS = {  # the metrics table; TRL's log keys in RunRecorder.TRL_KEYS
    "step": pl.Int64,
    "rollout": pl.Int64,
    "reward/mean": pl.Float64,
    "reward/std": pl.Float64,
    "kl": pl.Float64,
    "loss": pl.Float64,
    "grad_norm": pl.Float64,
    "clip/ratio": pl.Float64,
    "completion/mean_length": pl.Float64,
    "entropy": pl.Float64,
    "val/accuracy": pl.Float64,
    "perf/seconds": pl.Float64,
}
ROLLOUT_METRICS = ["reward/mean", "reward/std", "completion/mean_length"]  # one value per rollout


class RunRecorder(TrainerCallback):
    """Checkpoints, greedy validation, the per-step metrics table and the resumable state of
    one GRPO run."""

    TRL_KEYS = {  # TRL log key → our metric name
        "reward": "reward/mean",
        "reward_std": "reward/std",
        "loss": "loss",
        "kl": "kl",
        "grad_norm": "grad_norm",
        "completions/mean_length": "completion/mean_length",
        "clip_ratio/region_mean": "clip/ratio",
        "entropy": "entropy",
    }

    def __init__(
        self,
        cfg: GRPOMethodConfig,
        rollouts: int,
        tokenizer,
        validate: GreedyScorer,
        work: Path,
        fingerprint: dict,
        rows: list[dict],
        live: LiveMetrics,
    ):
        self.cfg, self.rollouts, self.tokenizer, self.validate, self.work = cfg, rollouts, tokenizer, validate, work
        self.fingerprint, self.live = fingerprint, live
        self.rows: dict[int, dict] = {row["step"]: row for row in rows}
        self.step_started = time.perf_counter()

    def _row(self, step: int) -> dict:
        return self.rows.setdefault(step, {"step": step, "rollout": (step - 1) // self.cfg.steps_per_rollout + 1})

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_started = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        row = self._row(step)
        row["perf/seconds"] = time.perf_counter() - self.step_started
        if broken := finite.first_non_finite_parameter(model.named_parameters()):
            raise finite.NonFiniteTraining(
                f"GRPO step {step} (learning_rate={self.cfg.learning_rate:g}): parameter {broken} holds a NaN or an "
                "Inf after the optimizer step; the run stops and publishes nothing"
            )
        if step % self.cfg.steps_per_rollout or not state.is_world_process_zero:
            return
        rollout = step // self.cfg.steps_per_rollout
        if rollout % self.cfg.validate_every == 0 or rollout == self.rollouts:
            model.eval()
            row["val/accuracy"] = self.validate(model).accuracy
            model.train()
            log.info("rollout %d validation accuracy %.4f", rollout, row["val/accuracy"])
        if rollout % self.cfg.checkpoint_every == 0 or rollout == self.rollouts:
            master = dict(model.named_parameters()) if self.cfg.save_master else None
            save_model(
                model,
                self.tokenizer,
                self.work / "checkpoints" / checkpoint_name(rollout),
                dtype=self.cfg.checkpoint_dtype,
                master=master,
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        row = self._row(state.global_step)
        for key, name in self.TRL_KEYS.items():
            if logs and key in logs:
                row[name] = float(logs[key])
        finite.require(
            f"GRPO step {state.global_step}", **{k: row.get(k) for k in ("loss", "grad_norm", "reward/mean")}
        )
        # TRL logs a step after its on_step_end, so the row is complete; its summary at the end
        # of training (train_loss, train_runtime) is no step
        if state.is_world_process_zero and logs and any(key in logs for key in self.TRL_KEYS):
            self.live.add({k: v for k, v in row.items() if k != "rollout"})

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        saved = self.work / "trl" / f"checkpoint-{state.global_step}"
        resume.complete(saved, state.global_step // self.cfg.steps_per_rollout, self.table(), self.fingerprint)

    def table(self) -> pl.DataFrame:
        """One row per optimizer step. TRL logs the rollout's figures (reward, reply length)
        with its first step; every step of that rollout trained on them, so they are
        carried over to its other steps."""
        rows = [{c: self.rows[s].get(c) for c in COLUMNS} for s in sorted(self.rows) if s > 0]
        return pl.DataFrame(rows, schema=COLUMNS).with_columns(pl.col(ROLLOUT_METRICS).forward_fill().over("rollout"))


def _dataset(rows: pl.DataFrame):
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": p}] for p in rows["prompt"]],
            "ground_truth": rows["ground_truth"].to_list(),
            "info": rows["info"].to_list(),
        }
    )


def drop_overlong(rows: pl.DataFrame, tokenizer, max_prompt_length: int | None) -> pl.DataFrame:
    """VeRL's `filter_overlong_prompts`: drop prompts whose chat-formatted token ids (generation
    prompt included) are longer than `max_prompt_length`; log how many."""
    if max_prompt_length is None:
        return rows
    keep = [len(ids) <= max_prompt_length for ids in chat_prompt_ids(tokenizer, rows["prompt"].to_list())]
    log.info("max_prompt_length=%d: dropped %d of %d training prompts", max_prompt_length, keep.count(False), len(keep))
    return rows.filter(pl.Series(keep, dtype=pl.Boolean))


def _trainer_class(decay_all_parameters: bool):
    """TRL's GRPOTrainer, or one whose AdamW decays every parameter as VeRL's does (the
    Trainer's own rule exempts biases and norm weights)."""
    from trl import GRPOTrainer  # heavy import

    if not decay_all_parameters:
        return GRPOTrainer

    class DecayAllGRPOTrainer(GRPOTrainer):
        def get_decay_parameter_names(self, model) -> list[str]:
            return [name for name, _ in model.named_parameters()]

    return DecayAllGRPOTrainer


def _trl_reward(scorer: str):
    reward = reward_function(scorer)

    def task_reward(completions, ground_truth, info, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [reward(text, truth, json.loads(i)) for text, truth, i in zip(texts, ground_truth, info, strict=True)]

    task_reward.__name__ = f"{scorer}_reward"  # TRL names the logged reward after the function
    return task_reward


def train(cfg: GRPOMethodConfig, job: TrainingJob) -> pl.DataFrame:
    """Run GRPO from the job's base model; write checkpoints and `metrics.parquet` into its `out_dir`.
    A killed run started again continues from its last checkpoint.

    The job's `stop_strings` end the greedy validation replies; TRL's sampled rollouts run to EOS or
    `max_new_tokens`, as VeRL's do."""
    from accelerate import PartialState

    work = partial_dir(job.out_dir)
    torch.set_num_threads(job.threads)
    fingerprint = run_fingerprint("grpo", cfg, job.seed, job.base_dir)
    tokenizer = load_tokenizer(job.base_dir)
    train_rows = drop_overlong(job.train_rows, tokenizer, cfg.max_prompt_length)
    if train_rows.height < cfg.prompts_per_rollout:
        raise ValueError(
            f"prompts_per_rollout={cfg.prompts_per_rollout} but the training split has {train_rows.height} prompts"
            + (f" of at most max_prompt_length={cfg.max_prompt_length} tokens" if cfg.max_prompt_length else "")
        )
    rollouts = cfg.total_rollouts(train_rows.height)
    model = load_model(job.base_dir, "float32")
    validation_rows = job.validation_rows
    if cfg.validation_size is not None:
        validation_rows = validation_rows.head(cfg.validation_size)
    processes = PartialState()
    device = f"cuda:{processes.local_process_index}" if torch.cuda.is_available() else "cpu"
    dtype = computed_in(cfg.compute_dtype, device)
    log.info("forward and backward passes in %s (compute_dtype=%s), fp32 master", dtype, cfg.compute_dtype)
    validate = GreedyScorer(
        tokenizer, validation_rows, job.scorer, job.max_new_tokens, cfg.validation_batch_size, device, job.stop_strings
    )
    # The main process cleans up the work folder first; the others then find what it kept.
    with processes.main_process_first():
        resumed = resume.latest(work / "trl", work, fingerprint)
    done = max((row["step"] for row in resumed.rows), default=0) if resumed else 0
    live = LiveMetrics(job.out_dir, job.report_to if processes.is_main_process else (), first_step=done + 1)
    recorder = RunRecorder(cfg, rollouts, tokenizer, validate, work, fingerprint, resumed.rows if resumed else [], live)
    if job.report_to:  # TRL's own logs beside ours; its callback reads the folder from here
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(job.out_dir) / "trl")
    trainer = _trainer_class(cfg.decay_all_parameters)(
        model=model,
        reward_funcs=_trl_reward(job.scorer),
        args=trl_config(
            cfg,
            work,
            job.max_new_tokens,
            job.seed,
            rollouts,
            processes.num_processes,
            job.report_to,
            bf16=dtype == "bfloat16",
        ),
        train_dataset=_dataset(train_rows),
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    trainer.train(resume_from_checkpoint=str(resumed.folder) if resumed else None)
    live.close()
    metrics = recorder.table()
    processes.wait_for_everyone()
    if processes.is_main_process:
        publish(work, job.out_dir, metrics, fingerprint, device_name(device), _PRECISION[dtype])
    return metrics
