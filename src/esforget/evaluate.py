"""Stage 4: retention evaluation — every checkpoint on every evaluation task, one long table.

Each checkpoint is loaded once and scored greedily on all tasks (new and prior) with the
same scorer ES fitness and validation use. Prompts are tokenised once for all checkpoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from esforget.models import load_model, load_tokenizer
from esforget.scoring import GreedyScorer

log = logging.getLogger(__name__)

COLUMNS = {
    "model": pl.String,
    "method": pl.String,
    "train_task": pl.String,
    "seed": pl.Int64,
    "step": pl.Int64,
    "eval_task": pl.String,
    "n": pl.Int64,
    "correct": pl.Int64,
    "accuracy": pl.Float64,
    "mean_generated_tokens": pl.Float64,
}


@dataclass(frozen=True)
class EvalTask:
    rows: pl.DataFrame
    scorer: str
    max_new_tokens: int
    stop_strings: tuple[str, ...] = ()


def evaluate(
    checkpoints: list[tuple[int, Path]],
    tasks: dict[str, EvalTask],
    labels: dict,
    batch_size: int,
    threads: int = 1,
) -> pl.DataFrame:
    """Score each (step, checkpoint dir) on each task; `labels` fills model/method/train_task/seed."""
    torch.set_num_threads(threads)
    tokenizer = load_tokenizer(checkpoints[0][1])
    scorers = {
        name: GreedyScorer(tokenizer, task.rows, task.scorer, task.max_new_tokens, batch_size, "cpu", task.stop_strings)
        for name, task in tasks.items()
    }
    records = []
    for step, path in tqdm(checkpoints, desc="checkpoints", unit="ckpt"):
        model = load_model(path)
        for name, score in scorers.items():
            scored = score(model)
            n = len(scored.correct)
            records.append(
                {
                    **labels,
                    "step": step,
                    "eval_task": name,
                    "n": n,
                    "correct": sum(scored.correct),
                    "accuracy": scored.accuracy,
                    "mean_generated_tokens": scored.generated_tokens / n,
                }
            )
            log.info("step %d %s accuracy %.4f (n=%d)", step, name, scored.accuracy, n)
    return pl.DataFrame(records, schema=COLUMNS)


def with_base(run_table: pl.DataFrame, base_table: pl.DataFrame, labels: dict) -> pl.DataFrame:
    """Prepend the base model's rows (step 0), relabelled as this run's."""
    base = base_table.with_columns(*(pl.lit(v, dtype=COLUMNS[k]).alias(k) for k, v in labels.items()))
    return pl.concat([base.select(list(COLUMNS)), run_table.select(list(COLUMNS))]).sort("step", "eval_task")
