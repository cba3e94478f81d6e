"""What predicts forgetting: R² and Spearman's ρ of each measure against the prior-task change,
with intervals from a bootstrap over runs, and the finding that names the best measure."""

import math

import polars as pl
import pytest

from esforget.report import findings, predictors
from esforget.report.predictors import fit, predictor_findings, predictor_fits, predictor_table


def test_r2_and_rho_are_the_squared_pearson_and_the_rank_correlation():
    assert fit([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx((1.0, 1.0))
    # r = 0.8 on (1, 2, 3, 4) against (1, 3, 2, 4), whose ranks are the values themselves
    assert fit([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx((0.64, 0.8))
    assert fit([1.0, 2.0, 3.0, 4.0], [1.0, 9.0, 10.0, 11.0])[1] == pytest.approx(1.0)  # monotone, not linear
    assert all(math.isnan(v) for v in fit([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # a constant predictor


def run_rows(method: str, algorithm: str, seed: int, changes: list[float], **predictors_by_step) -> list[dict]:
    return [
        {
            "model": "m",
            "method": method,
            "algorithm": algorithm,
            "train_task": "new",
            "seed": seed,
            "step": step,
            "prior_task": "prior",
            "prior_change": change,
            **{name: values[step - 1] for name, values in predictors_by_step.items()},
        }
        for step, change in enumerate(changes, start=1)
    ]


def table_of(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows)
    for name in predictors.PREDICTORS:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(name))
    return frame


def test_the_bootstrap_draws_runs_not_checkpoints():
    """Two runs, perfectly related to the predictor in opposite directions: pooled, ρ = 0; drawn
    as runs, a draw holds one run twice a quarter of the time each way, so ρ's interval spans
    −1 to 1. Drawing checkpoints would have given a narrow interval around 0."""
    x = [float(v) for v in range(1, 11)]
    rows = run_rows("es", "es", 0, x, fro_norm=x) + run_rows("es", "es", 1, [-v for v in x], fro_norm=x)
    fits = predictor_fits(table_of(rows))
    row = fits.filter((pl.col("scope") == "all") & (pl.col("predictor") == "fro_norm")).row(0, named=True)
    assert row["rho"] == pytest.approx(0.0, abs=1e-12) and (row["checkpoints"], row["runs"]) == (20, 2)
    assert (row["rho_low"], row["rho_high"]) == pytest.approx((-1.0, 1.0))
    assert set(fits["scope"]) == {"all", "es"}
    assert set(fits["predictor"]) == {"fro_norm"}  # the predictors never measured are left out


def test_the_finding_names_the_best_predictor_and_whether_it_beats_the_second():
    """Six runs in which the prior-task change is exactly −10 × the relative norm, while ‖ΔW‖
    follows it only loosely: the relative norm explains it best, by an interval above zero."""
    rows = []
    for seed in range(6):
        relative = [0.1 * (seed + 1) * k for k in (1, 2, 3)]
        loose = [r + (0.3 if (k + seed) % 2 else -0.3) for k, r in enumerate(relative)]
        changes = [-10 * r for r in relative]
        algorithm = "es" if seed < 3 else "grpo"
        rows += run_rows(algorithm, algorithm, seed, changes, relative_norm=relative, fro_norm=loose)
    table = table_of(rows)
    fits = predictor_fits(table)
    every = fits.filter(pl.col("scope") == "all")
    assert dict(every.select("predictor", "r2").rows())["relative_norm"] == pytest.approx(1.0)
    assert dict(every.select("predictor", "rho").rows())["relative_norm"] == pytest.approx(-1.0)
    [found] = predictor_findings(table, fits)
    assert found.verdict == findings.SUPPORTED and found.estimate.low > 0 and found.estimate.n == 6
    assert found.comparison.startswith("prior: R² of ‖ΔW‖_F / ‖W₀‖_F (1.00) minus R² of ‖ΔW‖_F")


def test_the_table_takes_the_change_in_points_from_the_base_and_the_new_tasks_sampled_kl():
    keys = {"model": "m", "method": "es", "algorithm": "es", "train_task": "new", "seed": 0}

    def row(step, task, accuracy, kl=None, sampled=None, probe="generative"):
        return {
            **keys,
            "step": step,
            "eval_task": task,
            "probe": probe,
            "accuracy": accuracy,
            "kl_from_base": kl,
            "kl_sampled": sampled,
        }

    retention = pl.DataFrame(
        [
            row(0, "new", 0.2, sampled=0.0),
            row(0, "prior", 0.9, kl=0.0, sampled=0.0),
            row(0, "prior", 0.5, probe="loglikelihood"),  # another probe: not the one predicted
            row(5, "new", 0.4, sampled=0.3),
            row(5, "prior", 0.75, kl=0.2, sampled=0.1),
        ]
    )
    norms = pl.DataFrame(
        [
            {"model": "m", "method": "es", "train_task": "new", "seed": 0, "step": s, "fro_norm": n,
             "relative_norm": n / 10, "sparsity@1e-06/overall": u}
            for s, n, u in ((0, 0.0, 1.0), (5, 2.0, 0.4))
        ]
    )  # fmt: skip
    table = predictor_table(retention, norms, ["prior"], 1e-6)
    assert table.height == 1  # step 0 left out
    got = table.row(0, named=True)
    assert got["prior_change"] == pytest.approx(-15.0)  # points
    assert (got["kl_sampled_new"], got["kl_prior"], got["fro_norm"], got["relative_norm"]) == (0.3, 0.2, 2.0, 0.2)
    assert got["unchanged"] == 0.4 and got["cosine_reference"] is None
