"""One training job: what a run trains on and where it writes, whichever its algorithm.

The rule's script (and a launcher's worker) describes a job in plain values — paths, names,
numbers — so that it can cross into other processes as JSON (`esforget.train.launch`);
`TrainingJob.from_spec` reads the splits it names. Both trainers take a `TrainingJob` beside
their method's typed config: `es.train(cfg, job)`, `grpo.train(cfg, job)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from esforget.tasks import read_split


@dataclass(frozen=True)
class ReplayTask:
    """A prior task whose training prompts ES replays in its fitness (`ESConfig.replay_tasks`)."""

    name: str
    rows: pl.DataFrame
    """Its training split."""
    scorer: str
    max_new_tokens: int
    stop_strings: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: dict) -> ReplayTask:
        return cls(
            name=spec["name"],
            rows=read_split(spec["train"]),
            scorer=spec["scorer"],
            max_new_tokens=spec["max_new_tokens"],
            stop_strings=tuple(spec.get("stop_strings", ())),
        )


@dataclass(frozen=True)
class TrainingJob:
    base_dir: Path
    """The base model's Hugging Face directory, θ₀ of the run."""
    train_rows: pl.DataFrame
    """The training split (`esforget.tasks.ROW_SCHEMA`): ES fitness and GRPO rollouts."""
    validation_rows: pl.DataFrame
    """The validation split, scored greedily during training (the peak-validation checkpoint)."""
    scorer: str
    """The task's reward (`esforget.tasks.SCORERS`)."""
    max_new_tokens: int
    """Longest reply, in tokens."""
    seed: int
    """The run's seed: ES noise and prompt batches, GRPO sampling and data order."""
    out_dir: Path
    """The run's folder: checkpoints/, metrics.parquet, run_config.json; partial/ while training."""
    threads: int = 1
    """CPU threads this process uses."""
    stop_strings: tuple[str, ...] = ()
    """Greedy replies end right after any of these (none: to EOS, as the authors decode)."""
    report_to: tuple[str, ...] = ()
    """Where per-step metrics also go while training (`esforget.train.live_metrics`): e.g.
    ("tensorboard",). Changes no number, so it is not part of the run's definition."""
    replay: tuple[ReplayTask, ...] = ()
    """The prior tasks an ES method replays, in the order of its `replay_tasks`."""

    @classmethod
    def from_spec(cls, spec: dict) -> TrainingJob:
        """The job a plain-values `spec` describes (the keys of this class, with the splits as
        paths under `train` and `validation`, and each replayed task's under `replay`), its
        splits read."""
        return cls(
            base_dir=Path(spec["base_dir"]),
            train_rows=read_split(spec["train"]),
            validation_rows=read_split(spec["validation"]),
            scorer=spec["scorer"],
            max_new_tokens=spec["max_new_tokens"],
            seed=spec["seed"],
            out_dir=Path(spec["out_dir"]),
            threads=spec.get("threads", 1),
            stop_strings=tuple(spec.get("stop_strings", ())),
            report_to=tuple(spec.get("report_to", ())),
            replay=tuple(ReplayTask.from_spec(task) for task in spec.get("replay", ())),
        )
