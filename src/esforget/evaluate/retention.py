"""Stage 4: retention evaluation — every checkpoint on every evaluation task, one long table.

Each checkpoint is loaded once and scored on all tasks (new and prior) by
  - the generative probe (every task): greedy replies scored by the task's reward, with the
    same scorer ES fitness and validation use — for multiple-choice tasks the authors' probe
    (numbered options, "answer with the number", first digit 1–4) — and the same replies by
    each of the task's `extra_scorers` (probe `generative/<scorer>`, e.g. our fairer math
    graders beside the authors' exact match);
  - the log-likelihood probe (multiple-choice tasks): the evaluation harnesses' acc and
    acc_norm (`esforget.evaluate.likelihood.LoglikScorer`);
and by its divergence from the base: on prior tasks the mean per-token KL(base ‖ checkpoint)
over the task's prompts (`kl_from_base`); on every task scored from a reply, RL's Razor's
KL(base ‖ checkpoint) over replies the base samples to the first `sampled_kl_prompts` prompts
(`kl_sampled`, `esforget.evaluate.likelihood.SampledDivergence`). Prompts are tokenised and the
base's replies sampled once for all checkpoints; the base stays loaded for the divergences.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from esforget.core.models import load_model, load_tokenizer
from esforget.core.statistics import wilson_interval
from esforget.decoding.greedy_scorer import GreedyScorer, stop_ids
from esforget.evaluate.likelihood import Divergence, LetterScorer, LoglikScorer, SampledDivergence, longest_first
from esforget.tasks import correct_threshold, score_replies

log = logging.getLogger(__name__)

COLUMNS = {
    "model": pl.String,
    "method": pl.String,
    "train_task": pl.String,
    "seed": pl.Int64,
    "step": pl.Int64,
    "eval_task": pl.String,
    "probe": pl.String,  # generative | generative/<extra scorer> | loglikelihood | loglikelihood_norm | answer_letter
    "n": pl.Int64,
    "correct": pl.Int64,
    "accuracy": pl.Float64,
    "ci_low": pl.Float64,  # 95 % Wilson interval of the accuracy
    "ci_high": pl.Float64,
    "mean_generated_tokens": pl.Float64,  # generative probe only
    "kl_from_base": pl.Float64,  # prior tasks only: mean per-token KL(base ‖ checkpoint) on the prompts
    "kl_sampled": pl.Float64,  # per-token KL(base ‖ checkpoint) on replies the base sampled (RL's Razor)
}


@dataclass(frozen=True)
class EvalTask:
    rows: pl.DataFrame
    scorer: str
    max_new_tokens: int
    stop_strings: tuple[str, ...] = ()
    prior: bool = False
    extra_scorers: tuple[str, ...] = ()


def evaluate(
    checkpoints: list[tuple[int, Path]],
    tasks: dict[str, EvalTask],
    labels: dict,
    batch_size: int,
    base_dir: str | Path,
    threads: int = 1,
    sampled_kl_prompts: int = 0,
    seed: int = 0,
) -> pl.DataFrame:
    """Score each (step, checkpoint dir) on each task; `labels` fills model/method/train_task/seed.
    `sampled_kl_prompts` (0: none) of each task's prompts, in the split's order, get replies
    sampled from the base with `seed` for `kl_sampled`."""
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(checkpoints[0][1])
    in_order = {
        name: GreedyScorer(
            tokenizer, task.rows, task.scorer, task.max_new_tokens, batch_size, device, task.stop_strings
        )
        for name, task in tasks.items()
        if task.scorer != "letter"
    }
    greedy = {name: _longest_first(scorer) for name, scorer in in_order.items()}
    letter = {
        name: LetterScorer(tokenizer, task.rows, batch_size, device)
        for name, task in tasks.items()
        if task.scorer == "letter"
    }
    loglik = {
        name: LoglikScorer(tokenizer, task.rows, batch_size, device)
        for name, task in tasks.items()
        if task.scorer == "choice"
    }
    base = load_model(base_dir, device=device)
    divergence = {
        name: Divergence(base, (greedy.get(name) or letter[name]).prompt_ids, tokenizer.pad_token_id, device)
        for name, task in tasks.items()
        if task.prior
    }
    sampled = {
        name: SampledDivergence(
            base,
            scorer.prompt_ids[:sampled_kl_prompts],
            stop_ids(tokenizer, base),
            tasks[name].max_new_tokens,
            tokenizer.pad_token_id,
            seed,
            device,
        )
        for name, scorer in in_order.items()
        if sampled_kl_prompts > 0
    }
    records = []
    for step, path in tqdm(checkpoints, desc="checkpoints", unit="ckpt"):
        model = load_model(path, device=device)
        for name in tasks:
            labelled = {**labels, "step": step, "eval_task": name}
            kl = divergence[name](model) if name in divergence else None
            kl_sampled = sampled[name](model) if name in sampled else None
            count = len(records)
            if name in letter:
                records.append(_row(labelled, "answer_letter", letter[name](model), None, kl))
            else:
                scored = greedy[name](model)
                mean_tokens = scored.generated_tokens / len(scored.correct)
                records.append(_row(labelled, "generative", scored.correct, mean_tokens, kl))
                for extra in tasks[name].extra_scorers:
                    rewards = score_replies(extra, scored.replies, greedy[name].rows)
                    correct = [r >= correct_threshold(extra) for r in rewards]
                    records.append(_row(labelled, f"generative/{extra}", correct, mean_tokens, kl))
            if name in loglik:
                choices = loglik[name](model)
                records.append(_row(labelled, "loglikelihood", choices.acc, None, kl))
                records.append(_row(labelled, "loglikelihood_norm", choices.acc_norm, None, kl))
            for record in records[count:]:
                record["kl_sampled"] = kl_sampled
            log.info(
                "step %d %s %s accuracy %.4f kl %s sampled kl %s",
                step,
                name,
                records[-1]["probe"],
                records[-1]["accuracy"],
                kl,
                kl_sampled,
            )
    return pl.DataFrame(records, schema=COLUMNS)


def _longest_first(scorer: GreedyScorer) -> GreedyScorer:
    """The scorer on its prompts reordered longest first, as the log-likelihood probes batch
    theirs: less padding in every batch. Accuracy is a count, so the order changes none,
    beyond batched float rounding (measured in docs/results/smollm2.md). Training keeps each
    split's order: ES fitness reproduces the authors' batch geometry."""
    return scorer.subset(longest_first(scorer.prompt_ids))


def _row(labelled: dict, probe: str, correct: list[bool], mean_tokens: float | None, kl: float | None) -> dict:
    n, hits = len(correct), sum(correct)
    low, high = wilson_interval(hits, n)
    return {
        **labelled,
        "probe": probe,
        "n": n,
        "correct": hits,
        "accuracy": hits / n,
        "ci_low": low,
        "ci_high": high,
        "mean_generated_tokens": mean_tokens,
        "kl_from_base": kl,
    }


def with_base(run_table: pl.DataFrame, base_table: pl.DataFrame, labels: dict) -> pl.DataFrame:
    """Prepend the base model's rows (step 0), relabelled as this run's."""
    base = base_table.with_columns(*(pl.lit(v, dtype=COLUMNS[k]).alias(k) for k, v in labels.items()))
    return pl.concat([base.select(list(COLUMNS)), run_table.select(list(COLUMNS))]).sort("step", "eval_task", "probe")
