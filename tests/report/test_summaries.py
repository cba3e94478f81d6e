"""Summaries over seeds: means with their 95 % intervals, and the matched-accuracy table."""

import polars as pl
import pytest

from esforget.report.summaries import (
    NO_INTERVAL,
    WILSON,
    accuracy_table,
    matched_accuracy_table,
    over_seeds,
    slope_table,
)

T_975_2 = 4.303  # Student's t, 97.5th percentile, 2 degrees of freedom (printed table)


def test_three_seeds_get_a_t_interval_and_one_seed_its_items_wilson_interval():
    frame = pl.DataFrame(
        {
            "method": ["es", "es", "es", "grpo"],
            "acc": [0.3, 0.4, 0.5, 0.6],
            "acc_ci_low": [None, None, None, 0.55],
            "acc_ci_high": [None, None, None, 0.65],
            "norm": [1.0, 2.0, 3.0, 0.1],
        }
    )
    out = {
        r["method"]: r
        for r in over_seeds(frame, ["method"], ["acc", "norm"], {"acc": ("acc_ci_low", "acc_ci_high")}).iter_rows(
            named=True
        )
    }
    es, grpo = out["es"], out["grpo"]
    assert (es["seeds"], es["acc"], es["interval"]) == (3, pytest.approx(0.4), "t, 3 seeds")
    assert es["acc_high"] - es["acc"] == pytest.approx(T_975_2 * 0.1 / 3**0.5, abs=1e-3)
    assert (grpo["acc_low"], grpo["acc_high"], grpo["interval"]) == (0.55, 0.65, WILSON)
    assert grpo["norm_low"] is None  # a norm has no item interval
    only_norm = over_seeds(frame.filter(pl.col("method") == "grpo"), ["method"], ["norm"])
    assert only_norm["interval"].item() == NO_INTERVAL


def retention_run(seed: int, finals: tuple[float, float], method: str = "es") -> list[dict]:
    """Steps 0, 10, 20 of one run on new task cd and prior task arith (generative probe)."""
    new, prior = finals
    rows = []
    for step, (n, p) in zip([0, 10, 20], [(0.2, 0.9), (0.3, 0.85), (new, prior)], strict=True):
        for task, accuracy in (("cd", n), ("arith", p)):
            rows.append(
                {
                    "model": "tiny",
                    "method": method,
                    "algorithm": method,
                    "train_task": "cd",
                    "seed": seed,
                    "step": step,
                    "eval_task": task,
                    "probe": "generative",
                    "accuracy": accuracy,
                    "ci_low": accuracy - 0.04,
                    "ci_high": accuracy + 0.04,
                    "kl_from_base": 0.01 * step if task == "arith" else None,
                }
            )
    return rows


def test_the_accuracy_table_averages_each_runs_values_over_seeds():
    retention = pl.DataFrame(retention_run(0, (0.4, 0.8)) + retention_run(1, (0.5, 0.7)) + retention_run(2, (0.6, 0.6)))
    peaks = pl.DataFrame(
        {
            "model": ["tiny"] * 3,
            "method": ["es"] * 3,
            "train_task": ["cd"] * 3,
            "seed": [0, 1, 2],
            "peak_step": [10, 20, 20],
            "peak_validation": [0.5] * 3,
        }
    )
    table = {r["eval_task"]: r for r in accuracy_table(retention, peaks).iter_rows(named=True)}
    arith = table["arith"]
    assert arith["final"] == pytest.approx(0.7) and arith["final_minus_base"] == pytest.approx(-0.2)
    assert arith["at_peak"] == pytest.approx((0.85 + 0.7 + 0.6) / 3)  # each run at its own peak
    assert arith["final_low"] == pytest.approx(0.7 - T_975_2 * 0.1 / 3**0.5, abs=1e-3)
    assert arith["final_kl"] == pytest.approx(0.2) and arith["interval"] == "t, 3 seeds"


def checkpoints(rows: list[tuple[str, int, list[float], list[float], list[float]]]) -> pl.DataFrame:
    """(method, seed, new accuracy, prior change, ‖ΔW‖ per step 0/10/20 — or fewer) → the
    checkpoint table."""
    return pl.DataFrame(
        [
            {
                "model": "tiny",
                "method": m,
                "algorithm": m,
                "train_task": "cd",
                "seed": s,
                "step": step,
                "prior_task": "arith",
                "probe": "generative",
                "new_accuracy": new[i],
                "prior_change": change[i],
                "fro_norm": norm[i],
            }
            for m, s, new, change, norm in rows
            for i, step in enumerate([0, 10, 20][: len(new)])
        ]
    )


def test_matched_accuracy_counts_the_runs_that_never_reach_a_level():
    table = checkpoints(
        [
            ("es", 0, [0.2, 0.3, 0.4], [0.0, -0.1, -0.2], [0, 1, 2]),  # +10 at step 10: −0.1
            ("es", 1, [0.2, 0.25, 0.4], [0.0, -0.05, -0.2], [0, 1, 2]),  # +10 a third of the way on: −0.1
            ("es", 2, [0.2, 0.22, 0.24], [0.0, -0.1, -0.2], [0, 1, 2]),  # never +10
        ]
    )
    row = matched_accuracy_table(table, (0.10,)).row(0, named=True)
    assert (row["reached"], row["runs"], row["seeds"]) == (2, 3, 2)
    assert row["prior_change"] == pytest.approx(-0.1)


def test_the_slope_table_averages_each_runs_slope_over_seeds():
    table = checkpoints(
        [("es", s, [0.2, 0.3, 0.4], [0.0, -0.1 * (s + 1), -0.2 * (s + 1)], [0, 1, 2]) for s in range(3)]
    )
    row = slope_table(table, "fro_norm").row(0, named=True)
    assert row["points_per_unit_fro_norm"] == pytest.approx(-20) and row["seeds"] == 3  # −10, −20, −30 points


def test_runs_too_short_for_a_slope_give_an_empty_slope_table_with_its_columns():
    """A slope needs three checkpoints (the base and two); a run of the base and one has none."""
    table = checkpoints([("es", s, [0.0, 0.4], [0.0, -0.1], [0, 1]) for s in range(3)])
    slopes = slope_table(table, "fro_norm")
    assert slopes.height == 0
    assert {"method", "prior_task", "probe", "seeds", "points_per_unit_fro_norm", "interval"} <= set(slopes.columns)
