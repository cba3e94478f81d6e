"""Per-method summaries over seeds, each value with its 95 % interval: the report's tables
and the data of its figures.

Every summarised column `x` becomes `x` (mean over seeds), `x_low`, `x_high` and the group
gets `seeds` and `interval`: "t, n seeds" (Student's t over seeds, `esforget.core.statistics`) or,
with one seed where the value is an accuracy on the test items, "Wilson, items" (its 95 %
Wilson interval over the items, from the retention table); otherwise "none (1 seed)".
"""

from __future__ import annotations

import polars as pl

from esforget.core.statistics import at_level, mean_interval, slope_interval

RUN_KEYS = ["model", "method", "train_task", "seed"]
RUN = ["model", "method", "algorithm", "train_task", "seed"]
"""A run, with its method's algorithm (as `report.collect` adds it)."""
T_OVER_SEEDS = "t, {n} seeds"
WILSON = "Wilson, items"
NO_INTERVAL = "none (1 seed)"


def over_seeds(
    frame: pl.DataFrame, by: list[str], values: list[str], wilson: dict[str, tuple[str, str]] | None = None
) -> pl.DataFrame:
    """Mean and 95 % interval of each column of `values` over the rows of each `by` group
    (one row per seed). `wilson` maps a value column to its (low, high) item-interval columns,
    used where a group has one seed."""
    wilson = wilson or {}
    rows = []
    for key, group in frame.group_by(by, maintain_order=True):
        row = dict(zip(by, key, strict=True))
        n = group.height
        row["seeds"] = n
        kinds = set()
        for column in values:
            estimate = mean_interval(group[column].to_list())
            low, high = estimate.low, estimate.high
            if n == 1 and column in wilson:
                low, high = (group[c].item() for c in wilson[column])
                kinds.add(WILSON)
            elif estimate.has_interval:
                kinds.add(T_OVER_SEEDS.format(n=n))
            row |= {column: _or_null(estimate.value), f"{column}_low": _or_null(low), f"{column}_high": _or_null(high)}
        row["interval"] = " / ".join(sorted(kinds)) or NO_INTERVAL
        rows.append(row)
    values_schema = {c: pl.Float64 for v in values for c in (v, f"{v}_low", f"{v}_high")}
    # no group (e.g. no run with the three checkpoints a slope needs): the table's columns, no row
    schema = {**frame.select(by).schema, "seeds": pl.Int64, **values_schema, "interval": pl.String}
    return pl.DataFrame(rows, schema=schema).sort(by)


def _or_null(value: float | None) -> float | None:
    """NaN (no value, no interval) as null: what the parquet tables and the charts' JSON hold."""
    return None if value is None or value != value else value


def accuracy_table(retention: pl.DataFrame, peaks: pl.DataFrame) -> pl.DataFrame:
    """Base, final and peak-validation accuracy per (model, method, train task, eval task,
    probe) and their changes from the base, mean over seeds with 95 % intervals, and the final
    KL from the base on prior tasks. The peak is each run's checkpoint with the best
    validation accuracy during training (`report.validation_peaks`); every task and probe is
    read at that same checkpoint."""
    with_peak = retention.join(peaks, on=RUN_KEYS, how="left")
    step = pl.col("step")
    per_run = with_peak.group_by(*RUN_KEYS, "eval_task", "probe").agg(
        pl.col("accuracy").filter(step == 0).first().alias("base"),
        pl.col("accuracy").sort_by(step).last().alias("final"),
        pl.col("ci_low").sort_by(step).last().alias("final_ci_low"),
        pl.col("ci_high").sort_by(step).last().alias("final_ci_high"),
        pl.col("accuracy").filter(step == pl.col("peak_step")).first().alias("at_peak"),
        pl.col("ci_low").filter(step == pl.col("peak_step")).first().alias("at_peak_ci_low"),
        pl.col("ci_high").filter(step == pl.col("peak_step")).first().alias("at_peak_ci_high"),
        pl.col("peak_step").first(),
        pl.col("kl_from_base").sort_by(step).last().alias("final_kl"),
    )
    per_run = per_run.with_columns(
        (pl.col("final") - pl.col("base")).alias("final_minus_base"),
        (pl.col("at_peak") - pl.col("base")).alias("peak_minus_base"),
    )
    return over_seeds(
        per_run,
        ["model", "method", "train_task", "eval_task", "probe"],
        ["base", "final", "at_peak", "final_minus_base", "peak_minus_base", "peak_step", "final_kl"],
        wilson={"final": ("final_ci_low", "final_ci_high"), "at_peak": ("at_peak_ci_low", "at_peak_ci_high")},
    )


def checkpoint_table(retention: pl.DataFrame, norms: pl.DataFrame, prior_tasks: list[str]) -> pl.DataFrame:
    """One row per (run, checkpoint, prior task, probe of that prior task): new-task accuracy
    by the authors' probe, prior-task accuracy, its change from the run's step 0, KL from the
    base and ‖ΔW‖_F (0 at step 0): the points of the dose-response figures and the findings."""
    keys = [*RUN_KEYS, "step"]
    new = retention.filter(
        (pl.col("eval_task") == pl.col("train_task")) & pl.col("probe").is_in(["generative", "answer_letter"])
    ).select(*keys, pl.col("accuracy").alias("new_accuracy"))
    prior = retention.filter(pl.col("eval_task").is_in(prior_tasks)).select(
        *keys,
        "algorithm",
        pl.col("eval_task").alias("prior_task"),
        "probe",
        pl.col("accuracy").alias("prior_accuracy"),
        pl.col("kl_from_base").alias("kl"),
    )
    table = prior.join(new, on=keys).join(norms.select(*keys, "fro_norm"), on=keys, how="left")
    base = pl.col("prior_accuracy").sort_by("step").first().over(*RUN, "prior_task", "probe")
    return table.with_columns((pl.col("prior_accuracy") - base).alias("prior_change")).sort(
        *RUN, "prior_task", "probe", "step"
    )


def matched_changes(checkpoints: pl.DataFrame, levels: tuple[float, ...]) -> pl.DataFrame:
    """Per run, prior task, probe and level: the prior-task change where the run's new-task
    accuracy first reaches its base + level, linearly interpolated between the checkpoints
    around the crossing (null: never reached)."""
    rows = []
    for key, run in checkpoints.group_by(*RUN, "prior_task", "probe", maintain_order=True):
        run = run.sort("step")
        new = run["new_accuracy"].to_list()
        for level in levels:
            change = at_level(run["step"].to_list(), new, run["prior_change"].to_list(), new[0] + level)
            rows.append(
                dict(zip([*RUN, "prior_task", "probe"], key, strict=True)) | {"level": level, "prior_change": change}
            )
    return pl.DataFrame(rows, schema_overrides={"prior_change": pl.Float64})


def matched_accuracy_table(checkpoints: pl.DataFrame, levels: tuple[float, ...]) -> pl.DataFrame:
    """Per method, prior task, probe and level: the prior-task change at matched new-task
    accuracy (`matched_changes`), mean over the seeds that reach the level with its interval,
    and how many of the method's runs reach it (the others are counted, not dropped)."""
    table = matched_changes(checkpoints, levels)
    by = ["model", "method", "algorithm", "train_task", "prior_task", "probe", "level"]
    counts = table.group_by(by).agg(pl.col("prior_change").is_not_null().sum().alias("reached"), pl.len().alias("runs"))
    reached = table.drop_nulls("prior_change")
    if reached.is_empty():
        return counts.sort(by)
    return counts.join(over_seeds(reached, by, ["prior_change"]), on=by, how="left").sort(by)


def run_slopes(checkpoints: pl.DataFrame, x: str) -> pl.DataFrame:
    """Per run, prior task and probe: the OLS slope of prior-task change, in accuracy points, on
    `x` (fro_norm or kl) over the run's checkpoints."""
    rows = []
    for key, run in checkpoints.group_by(*RUN, "prior_task", "probe", maintain_order=True):
        fit = slope_interval(run[x].to_list(), [100 * c for c in run["prior_change"]])
        rows.append(dict(zip([*RUN, "prior_task", "probe"], key, strict=True)) | {"slope": fit.value})
    return pl.DataFrame(rows, schema_overrides={"slope": pl.Float64})


def slope_table(checkpoints: pl.DataFrame, x: str) -> pl.DataFrame:
    """Per method, prior task and probe: the per-run slope of prior-task change (points per
    unit of `x`), mean over seeds with its t interval (a run's checkpoints are not independent,
    its seeds are)."""
    by = ["model", "method", "algorithm", "train_task", "prior_task", "probe"]
    slopes = run_slopes(checkpoints, x).drop_nans("slope").rename({"slope": f"points_per_unit_{x}"})
    return over_seeds(slopes, by, [f"points_per_unit_{x}"])


def run_dips(checkpoints: pl.DataFrame) -> pl.DataFrame:
    """Per run, prior task and probe: the deepest prior-task change over its checkpoints
    (points; 0 if it never fell below the base), the step where it was, the final change and
    how much of the dip came back by the end (final − deepest, points)."""
    rows = []
    for key, run in checkpoints.group_by(*RUN, "prior_task", "probe", maintain_order=True):
        run = run.sort("step")
        changes = [100 * c for c in run["prior_change"]]
        deepest = min(range(len(changes)), key=changes.__getitem__)  # the first of equal dips
        rows.append(
            dict(zip([*RUN, "prior_task", "probe"], key, strict=True))
            | {
                "deepest": changes[deepest],
                "deepest_step": run["step"][deepest],
                "final": changes[-1],
                "recovered": changes[-1] - changes[deepest],
            }
        )
    return pl.DataFrame(rows, schema_overrides={c: pl.Float64 for c in ("deepest", "final", "recovered")})


def dip_table(checkpoints: pl.DataFrame) -> pl.DataFrame:
    """Per method, prior task and probe: the deepest dip, the final change and what came back,
    mean over seeds with t intervals, and the median step of the dip."""
    by = ["model", "method", "algorithm", "train_task", "prior_task", "probe"]
    dips = run_dips(checkpoints)
    steps = dips.group_by(by, maintain_order=True).agg(pl.col("deepest_step").median().alias("median_deepest_step"))
    return over_seeds(dips, by, ["deepest", "final", "recovered"]).join(steps, on=by, how="left")


AUTHORS_PROBES = ["generative", "answer_letter"]
"""The probe the authors used for each kind of task: a greedy reply; MMLU's answer letter."""


def tradeoff_points(retention: pl.DataFrame, prior_tasks: list[str]) -> pl.DataFrame:
    """Per method, checkpoint step and prior task: new-task and prior-task accuracy by the
    authors' probes, mean over seeds with intervals (Wilson over items with one seed)."""
    retention = retention.filter(pl.col("probe").is_in(AUTHORS_PROBES))
    keys = [*RUN_KEYS, "step"]
    new = retention.filter(pl.col("eval_task") == pl.col("train_task")).select(
        *keys,
        "algorithm",
        pl.col("accuracy").alias("new_accuracy"),
        pl.col("ci_low").alias("new_ci_low"),
        pl.col("ci_high").alias("new_ci_high"),
    )
    prior = retention.filter(pl.col("eval_task").is_in(prior_tasks)).select(
        *keys,
        pl.col("eval_task").alias("prior_task"),
        pl.col("accuracy").alias("prior_accuracy"),
        pl.col("ci_low").alias("prior_ci_low"),
        pl.col("ci_high").alias("prior_ci_high"),
    )
    return over_seeds(
        new.join(prior, on=keys),
        ["model", "method", "algorithm", "train_task", "prior_task", "step"],
        ["new_accuracy", "prior_accuracy"],
        wilson={"new_accuracy": ("new_ci_low", "new_ci_high"), "prior_accuracy": ("prior_ci_low", "prior_ci_high")},
    )


def norm_summary(norms: pl.DataFrame) -> pl.DataFrame:
    """‖ΔW‖_F per method and checkpoint step, mean over seeds with its interval."""
    return over_seeds(norms, ["model", "method", "train_task", "step"], ["fro_norm"])


def kl_summary(retention: pl.DataFrame, prior_tasks: list[str]) -> pl.DataFrame:
    """KL(base ‖ checkpoint) per method, step and prior task, mean over seeds (the retention
    table repeats it on each probe's row: one per run and task is kept)."""
    kl = (
        retention.filter(pl.col("kl_from_base").is_not_null() & pl.col("eval_task").is_in(prior_tasks))
        .unique([*RUN_KEYS, "step", "eval_task"], keep="first")
        .rename({"eval_task": "prior_task", "kl_from_base": "kl"})
    )
    return over_seeds(kl, ["model", "method", "train_task", "prior_task", "step"], ["kl"])


CURVES = {
    "fitness/mean": "ES fitness, mean over members",
    "fitness/max": "ES fitness, best member",
    "reward/mean": "GRPO reward, mean over rollouts",
    "val/accuracy": "validation accuracy",
}
"""Training metrics drawn as curves: metrics.parquet column → panel title."""


def training_curves(metrics: list[tuple[pl.DataFrame, dict]]) -> pl.DataFrame:
    """The `CURVES` of every run, long (run, measure, step, value), then mean over seeds per
    method, measure and step. GRPO logs per optimizer step; validation is logged where it ran."""
    long = []
    for table, run in metrics:
        present = [c for c in CURVES if c in table.columns]
        long.append(
            table.select(pl.col("step").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in present))
            .unpivot(index="step", variable_name="measure", value_name="value")
            .drop_nulls("value")
            .with_columns(
                pl.col("measure").replace_strict(CURVES),
                pl.lit(run["model"]).alias("model"),
                pl.lit(run["method"]).alias("method"),
                pl.lit(run["task"]).alias("train_task"),
                pl.lit(run["seed"], dtype=pl.Int64).alias("seed"),
            )
        )
    return over_seeds(pl.concat(long), ["model", "method", "train_task", "measure", "step"], ["value"])


def layer_sparsity(per_tensor: pl.DataFrame, thresholds: list[float]) -> pl.DataFrame:
    """Mean per-tensor sparsity per layer and bucket at each run's final checkpoint (the
    authors' layer average), at every τ, then mean over seeds."""
    final = per_tensor.filter((pl.col("step") == pl.col("step").max().over(RUN_KEYS)) & pl.col("layer").is_not_null())
    per_run = pl.concat(
        final.group_by(*RUN_KEYS, "algorithm", "layer", "bucket")
        .agg(pl.col(f"sparsity@{tau:g}").mean().alias("sparsity"))
        .with_columns(pl.lit(f"{tau:g}").alias("tau"))
        for tau in thresholds
    )
    return over_seeds(per_run, ["model", "method", "algorithm", "train_task", "tau", "layer", "bucket"], ["sparsity"])
