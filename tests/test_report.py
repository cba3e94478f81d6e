"""The report's accuracy table reads every task at each run's peak-validation checkpoint,
chosen from the training metrics, never from the split it reports."""

import polars as pl
import pytest

from esforget.report import accuracy_table, validation_peaks

RUN = {"model": "tiny", "method": "es", "train_task": "countdown", "seed": 0}


def retention(rows):
    return pl.DataFrame(
        [
            {**RUN, "step": s, "eval_task": t, "probe": "generative", "accuracy": a, "kl_from_base": None}
            for s, t, a in rows
        ],
        schema_overrides={"kl_from_base": pl.Float64},
    )


def test_peak_is_the_best_validation_checkpoint_not_the_best_test_one():
    table = retention(
        [
            (0, "countdown", 0.20),
            (0, "arith", 0.90),
            (10, "countdown", 0.50),
            (10, "arith", 0.60),  # best on test, not on validation
            (20, "countdown", 0.40),
            (20, "arith", 0.80),
            (30, "countdown", 0.35),
            (30, "arith", 0.70),
        ]
    )
    metrics = pl.DataFrame(
        [
            {**RUN, "checkpoint": c, "val/accuracy": v}
            for c, v in [(5, 0.9), (10, 0.30), (20, 0.45), (25, None), (30, 0.45)]
        ]
    )
    # step 5 was validated but never saved: only checkpoints can be the peak
    peaks = validation_peaks(metrics.filter(pl.col("checkpoint").is_in([10, 20, 30])))
    assert peaks.select("peak_step", "peak_validation").rows() == [(20, 0.45)]  # the earlier of a tie
    out = {r["eval_task"]: r for r in accuracy_table(table, peaks).iter_rows(named=True)}
    assert (out["countdown"]["at_peak"], out["arith"]["at_peak"]) == (0.40, 0.80)
    assert out["countdown"]["final"] == 0.35 and out["countdown"]["base"] == 0.20
    assert out["countdown"]["peak_minus_base"] == pytest.approx(0.20)
    assert out["arith"]["final_minus_base"] == pytest.approx(-0.20)


def test_precision_table_reads_each_runs_final_checkpoint_and_its_drift_share():
    from esforget.report import precision_table

    methods = {
        "es": {"algorithm": "es", "numerics": "authors", "dtype": "float16"},
        "grpo_bf16": {"algorithm": "grpo", "checkpoint_dtype": "bfloat16", "save_master": True},
    }
    runs = [{**RUN, "method": "es", "seed": s} for s in (0, 1)] + [{**RUN, "method": "grpo_bf16"}]
    norms = pl.DataFrame(
        [
            {
                **run,
                "step": step,
                "fro_norm": norm,
                "master_fro_norm": master,
                "sparsity@1e-06/overall": stored,
                "master_sparsity@1e-06/overall": master_sparsity,
                "erased@1e-06/overall": erased,
            }
            for run, rows in zip(
                runs,
                [
                    [(10, 1.0, None, 0.1, None, None), (20, 2.0, None, 0.2, None, None)],
                    [(20, 4.0, None, 0.4, None, None)],
                    [(20, 0.5, 0.6, 0.9, 0.0, 0.9)],
                ],
                strict=True,
            )
            for step, norm, master, stored, master_sparsity, erased in rows
        ],
        schema_overrides={
            "master_fro_norm": pl.Float64,
            "master_sparsity@1e-06/overall": pl.Float64,
            "erased@1e-06/overall": pl.Float64,
        },
    )
    per_tensor = norms.select(*RUN, "step").with_columns(
        stored_dtype=pl.when(pl.col("method") == "es").then(pl.lit("float16")).otherwise(pl.lit("bfloat16"))
    )
    drift = pl.DataFrame(
        [
            {**runs[0], "step": 10, "drift_total": 0.05},
            {**runs[0], "step": 20, "drift_total": 0.2},
            {**runs[1], "step": 20, "drift_total": 0.4},
        ],
        schema_overrides={"drift_total": pl.Float64},
    )

    table = {r["method"]: r for r in precision_table(norms, per_tensor, drift, methods, [1e-6]).iter_rows(named=True)}

    es = table["es"]
    assert (es["seeds"], es["step"], es["numerics"], es["stored_dtype"]) == (2, 20, "ES authors, float16", "float16")
    assert es["fro_norm"] == pytest.approx(3.0) and es["sparsity@1e-06"] == pytest.approx(0.3)
    assert es["drift_share"] == pytest.approx(0.1)  # at the final iteration: 0.2/2 and 0.4/4
    assert es["master_fro_norm"] is None
    grpo = table["grpo_bf16"]
    assert (grpo["stored_dtype"], grpo["master_fro_norm"], grpo["erased@1e-06"]) == ("bfloat16", 0.6, 0.9)
    assert grpo["drift_share"] is None
