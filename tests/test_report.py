"""The report's accuracy table reads every task at each run's peak-validation checkpoint,
chosen from the training metrics, never from the split it reports."""

import polars as pl
import pytest

from esforget.report import accuracy_table, validation_peaks

RUN = {"model": "tiny", "method": "es", "train_task": "countdown", "seed": 0}


def retention(rows):
    return pl.DataFrame(
        [{**RUN, "step": s, "eval_task": t, "probe": "generative", "accuracy": a, "kl_from_base": None} for s, t, a in rows],
        schema_overrides={"kl_from_base": pl.Float64},
    )


def test_peak_is_the_best_validation_checkpoint_not_the_best_test_one():
    table = retention([
        (0, "countdown", 0.20), (0, "arith", 0.90),
        (10, "countdown", 0.50), (10, "arith", 0.60),  # best on test, not on validation
        (20, "countdown", 0.40), (20, "arith", 0.80),
        (30, "countdown", 0.35), (30, "arith", 0.70),
    ])
    metrics = pl.DataFrame([{**RUN, "checkpoint": c, "val/accuracy": v}
                            for c, v in [(5, 0.9), (10, 0.30), (20, 0.45), (25, None), (30, 0.45)]])
    # step 5 was validated but never saved: only checkpoints can be the peak
    peaks = validation_peaks(metrics.filter(pl.col("checkpoint").is_in([10, 20, 30])))
    assert peaks.select("peak_step", "peak_validation").rows() == [(20, 0.45)]  # the earlier of a tie
    out = {r["eval_task"]: r for r in accuracy_table(table, peaks).iter_rows(named=True)}
    assert (out["countdown"]["at_peak"], out["arith"]["at_peak"]) == (0.40, 0.80)
    assert out["countdown"]["final"] == 0.35 and out["countdown"]["base"] == 0.20
    assert out["countdown"]["peak_minus_base"] == pytest.approx(0.20)
    assert out["arith"]["final_minus_base"] == pytest.approx(-0.20)
