"""What predicts forgetting: each candidate measure of how far a checkpoint moved, against the
prior-task change it shows, over all checkpoints of all runs and within each algorithm.

The candidates, from the claims this pipeline tests (docs/study.md):
  kl_sampled_new   KL(base ‖ checkpoint) on replies the base samples to the new task's prompts
                   (RL's Razor, arXiv 2509.04259: the predictor it proposes)
  kl_prior         KL(base ‖ checkpoint) on the prior task's own prompts
  relative_norm    ‖ΔW‖_F / ‖W₀‖_F (what tracked forgetting in the independent reproduction)
  fro_norm         ‖ΔW‖_F (the study's own measure)
  unchanged        the share of entries with |ΔW| ≤ τ, the first configured τ (the study's sparsity)
  cosine_reference the cosine between the run's update and the compared method's final update
                   (Hoy et al., arXiv 2604.01499; `analysis.compare_to`)

For each, R² of the least-squares line of prior-task change on the predictor, and Spearman's ρ.
A run's checkpoints are not independent, so the intervals come from a bootstrap over runs: runs
are drawn with replacement (all their checkpoints with them), the statistics recomputed, and
the 2.5 and 97.5 percentiles taken; the difference between the best predictor's R² and the
second's is bootstrapped on the same draws. Step 0 (the base, where every predictor and the
change are 0 by construction) is left out.

Why by hand: a pooled bootstrap over clusters is a few lines of numpy; scipy's `bootstrap`
resamples observations, not the runs they belong to.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy.stats import rankdata

from esforget.core.statistics import Estimate
from esforget.report.findings import Finding, verdict
from esforget.report.summaries import RUN, RUN_KEYS

PREDICTORS = {
    "kl_sampled_new": "KL on the new task's sampled replies (RL's Razor)",
    "kl_prior": "KL on the prior task's prompts",
    "relative_norm": "‖ΔW‖_F / ‖W₀‖_F",
    "fro_norm": "‖ΔW‖_F",
    "unchanged": "share of entries unchanged (|ΔW| ≤ τ)",
    "cosine_reference": "cosine to the compared method's update",
}
"""Column → what it measures, in the order the report lists them."""
RESAMPLES = 1000
"""Bootstrap draws of runs."""
MAIN_PROBES = ("generative", "answer_letter")
"""The probe whose prior-task change is predicted: the authors' (a reply, or MMLU's letter)."""


def predictor_table(retention: pl.DataFrame, norms: pl.DataFrame, prior_tasks: list[str], tau: float) -> pl.DataFrame:
    """One row per (run, checkpoint after step 0, prior task): the prior-task change in points
    (authors' probe) and every predictor available for that checkpoint (null where not measured)."""
    keys = [*RUN, "step"]
    main = retention.filter(pl.col("probe").is_in(MAIN_PROBES))
    prior = main.filter(pl.col("eval_task").is_in(prior_tasks)).select(
        *keys,
        pl.col("eval_task").alias("prior_task"),
        pl.col("accuracy").alias("prior_accuracy"),
        pl.col("kl_from_base").alias("kl_prior"),
    )
    base = pl.col("prior_accuracy").sort_by("step").first().over(*RUN, "prior_task")
    prior = prior.with_columns((100 * (pl.col("prior_accuracy") - base)).alias("prior_change"))
    new = main.filter(pl.col("eval_task") == pl.col("train_task")).select(
        *keys, pl.col("kl_sampled").alias("kl_sampled_new")
    )
    weights = norms.select(
        *RUN_KEYS,
        "step",
        "fro_norm",
        "relative_norm",
        pl.col(f"sparsity@{tau:g}/overall").alias("unchanged"),
        _or_null(norms, "cosine_reference"),  # only where analysis.compare_to names a method
    )
    table = prior.join(new, on=keys, how="left").join(weights, on=[*RUN_KEYS, "step"], how="left")
    return table.filter(pl.col("step") > 0).select(*RUN, "step", "prior_task", "prior_change", *PREDICTORS)


def _or_null(frame: pl.DataFrame, column: str) -> pl.Expr:
    return pl.col(column) if column in frame.columns else pl.lit(None, pl.Float64).alias(column)


def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(R² of the least-squares line of y on x, Spearman's ρ); nan where x or y is constant."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    r = float(np.corrcoef(x, y)[0, 1])
    rho = float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    return r * r, rho


FIT_COLUMNS = {
    "prior_task": pl.String,
    "scope": pl.String,
    "predictor": pl.String,
    "checkpoints": pl.Int64,
    "runs": pl.Int64,
    **{c: pl.Float64 for c in ("r2", "r2_low", "r2_high", "rho", "rho_low", "rho_high")},
}


def predictor_fits(table: pl.DataFrame, seed: int = 0, resamples: int = RESAMPLES) -> pl.DataFrame:
    """Per prior task, scope (all runs, then each algorithm) and predictor: R² and ρ with
    bootstrap intervals over runs, and how many checkpoints and runs they rest on."""
    rows = []
    for (task,), of_task in table.group_by("prior_task", maintain_order=True):
        scopes = [("all", of_task)] + [(a, part) for (a,), part in of_task.group_by("algorithm", maintain_order=True)]
        for scope, part in scopes:
            for predictor in PREDICTORS:
                runs = _runs(part, [predictor])
                if not runs:
                    continue
                x, y = _pooled(runs, range(len(runs)), predictor)
                r2, rho = fit(x, y)
                boot = np.array([fit(*_pooled(runs, draw, predictor)) for draw in _draws(len(runs), seed, resamples)])
                rows.append(
                    {
                        "prior_task": task,
                        "scope": scope,
                        "predictor": predictor,
                        "checkpoints": len(x),
                        "runs": len(runs),
                        "r2": r2,
                        "r2_low": _percentile(boot[:, 0], 2.5),
                        "r2_high": _percentile(boot[:, 0], 97.5),
                        "rho": rho,
                        "rho_low": _percentile(boot[:, 1], 2.5),
                        "rho_high": _percentile(boot[:, 1], 97.5),
                    }
                )
    return pl.DataFrame(rows, schema=FIT_COLUMNS)


def best_against_second(
    table: pl.DataFrame, fits: pl.DataFrame, task: str, seed: int = 0, resamples: int = RESAMPLES
) -> tuple[str, str, Estimate] | None:
    """Over all runs of `task`: the predictors with the largest and second-largest R², and the
    bootstrap interval over runs of the difference of their R²s, both fitted on the same draws
    and on the checkpoints where both were measured. None with fewer than two predictors."""
    ranked = fits.filter((pl.col("prior_task") == task) & (pl.col("scope") == "all")).drop_nans("r2")
    ranked = ranked.sort("r2", descending=True)["predictor"].to_list()
    if len(ranked) < 2:
        return None
    best, second = ranked[:2]
    runs = _runs(table.filter(pl.col("prior_task") == task), [best, second])

    def difference(draw) -> float:
        return fit(*_pooled(runs, draw, best))[0] - fit(*_pooled(runs, draw, second))[0]

    boot = np.array([difference(draw) for draw in _draws(len(runs), seed, resamples)])
    estimate = Estimate(difference(range(len(runs))), _percentile(boot, 2.5), _percentile(boot, 97.5), len(runs))
    return best, second, estimate


def _runs(part: pl.DataFrame, predictors: list[str]) -> list[dict[str, np.ndarray]]:
    """Each run's checkpoints where `predictors` were all measured, as arrays by column."""
    runs = []
    for _, run in part.drop_nulls(predictors).group_by(RUN, maintain_order=True):
        runs.append({column: run[column].to_numpy() for column in [*predictors, "prior_change"]})
    return runs


def _draws(count: int, seed: int, resamples: int) -> list[np.ndarray]:
    """`resamples` draws of `count` run indices with replacement (a run drawn twice counts twice)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, count, count) for _ in range(resamples)]


def _pooled(runs: list[dict[str, np.ndarray]], draw, predictor: str) -> tuple[np.ndarray, np.ndarray]:
    """The drawn runs' checkpoints pooled: (predictor, prior-task change)."""
    return (
        np.concatenate([runs[i][predictor] for i in draw]),
        np.concatenate([runs[i]["prior_change"] for i in draw]),
    )


def _percentile(values: np.ndarray, q: float) -> float:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if len(values) else math.nan


def predictor_findings(table: pl.DataFrame, fits: pl.DataFrame) -> list[Finding]:
    """Per prior task: which predictor explains forgetting best over all runs, and whether it
    beats the second (the interval of the difference of their R²)."""
    found = []
    for task in fits["prior_task"].unique(maintain_order=True).to_list():
        compared = best_against_second(table, fits, task)
        if compared is None:
            continue
        best, second, estimate = compared
        r2 = dict(
            fits.filter((pl.col("prior_task") == task) & (pl.col("scope") == "all")).select("predictor", "r2").rows()
        )
        found.append(
            Finding(
                question="Which measure predicts forgetting best?",
                comparison=(
                    f"{task}: R² of {PREDICTORS[best]} ({r2[best]:.2f}) minus R² of {PREDICTORS[second]} "
                    f"({r2[second]:.2f}), over every run's checkpoints"
                ),
                estimate=estimate,
                verdict=verdict(estimate, +1),
                note="interval: bootstrap over runs; supported means the best beats the second",
                prior_task=task,
                slope=True,
            )
        )
    return found
