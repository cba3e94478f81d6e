"""Stage 6: one self-contained HTML page with the study's figures and table.

Charts are Altair specs rendered to static SVG with vl-convert, so the page needs no
JavaScript and no network to open.
"""

from __future__ import annotations

import html
from pathlib import Path

import altair as alt
import polars as pl
import vl_convert as vlc

from esforget.io import atomic_path

RUN_KEYS = ["model", "method", "train_task", "seed"]
AUTHORS_PROBES = ["generative", "answer_letter"]
"""The probe the authors used for each kind of task: a greedy reply; MMLU's answer letter."""


def retention_pairs(retention: pl.DataFrame, prior_tasks: list[str]) -> pl.DataFrame:
    """One row per (run, checkpoint, prior task): new-task accuracy beside prior-task accuracy,
    both by the authors' probe of each task (generative; the answer letter for MMLU)."""
    retention = retention.filter(pl.col("probe").is_in(AUTHORS_PROBES))
    new = retention.filter(pl.col("eval_task") == pl.col("train_task")).select(
        *RUN_KEYS, "algorithm", "step", pl.col("accuracy").alias("new_accuracy")
    )
    prior = retention.filter(pl.col("eval_task").is_in(prior_tasks)).select(
        *RUN_KEYS, "step", pl.col("eval_task").alias("prior_task"), pl.col("accuracy").alias("prior_accuracy")
    )
    return new.join(prior, on=[*RUN_KEYS, "step"])


def tradeoff_chart(pairs: pl.DataFrame) -> alt.Chart:
    base = alt.Chart(pairs).encode(
        x=alt.X("new_accuracy:Q", title="new-task accuracy", scale=alt.Scale(zero=False)),
        y=alt.Y("prior_accuracy:Q", title="prior-task accuracy", scale=alt.Scale(zero=False)),
    )
    path = base.mark_line(opacity=0.35).encode(
        detail=alt.Detail(["method:N", "seed:N"]), order="step:Q", color=alt.value("gray")
    )
    points = base.mark_point(size=70, filled=True).encode(
        color=alt.Color("step:Q", scale=alt.Scale(scheme="viridis")),
        shape=alt.Shape("method:N"),
        tooltip=[*RUN_KEYS, "step", "new_accuracy", "prior_accuracy"],
    )
    return (
        (path + points)
        .properties(width=320, height=260)
        .facet(column=alt.Column("prior_task:N", title="prior task"), row=alt.Row("train_task:N", title="trained on"))
    )


def _against_step(frame: pl.DataFrame, field: str, title: str, tooltip: list[str]) -> alt.Chart:
    """One line per run of `field` against step, coloured by method."""
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q"),
            y=alt.Y(f"{field}:Q", title=title),
            color="method:N",
            detail="seed:N",
            tooltip=[*RUN_KEYS, "step", *tooltip, field],
        )
        .properties(width=360, height=240)
    )


def norm_chart(weights: pl.DataFrame) -> alt.Chart:
    return _against_step(weights, "fro_norm", "‖ΔW‖_F (all parameters)", []).facet(
        column=alt.Column("train_task:N", title="trained on")
    )


def divergence_chart(retention: pl.DataFrame) -> alt.Chart:
    """KL(base ‖ checkpoint) on each prior task's prompts against step (one value per
    checkpoint and prior task, repeated on each probe's row: read from the first probe)."""
    kl = retention.filter(pl.col("kl_from_base").is_not_null()).unique([*RUN_KEYS, "step", "eval_task"], keep="first")
    return _against_step(kl, "kl_from_base", "mean per-token KL(base ‖ checkpoint)", ["eval_task"]).facet(
        column=alt.Column("eval_task:N", title="prompts of prior task"), row=alt.Row("train_task:N", title="trained on")
    )


def sparsity_chart(per_layer: pl.DataFrame, tau: float) -> alt.Chart:
    return (
        alt.Chart(per_layer)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O"),
            y=alt.Y("sparsity:Q", title=f"share of |ΔW| ≤ {tau:g}", scale=alt.Scale(domain=[0, 1])),
            color="bucket:N",
            strokeDash=alt.StrokeDash("algorithm:N", title="algorithm"),
            detail="method:N",
            tooltip=[*RUN_KEYS, "layer", "bucket", "sparsity"],
        )
        .properties(width=360, height=240)
        .facet(column=alt.Column("train_task:N", title="trained on (final checkpoints)"))
    )


def layer_sparsity(per_tensor: pl.DataFrame, tau: float) -> pl.DataFrame:
    """Mean per-tensor sparsity per layer and bucket at each run's final checkpoint."""
    col = f"sparsity@{tau:g}"
    final = per_tensor.filter(pl.col("step") == pl.col("step").max().over(RUN_KEYS))
    return (
        final.filter(pl.col("layer").is_not_null())
        .group_by(*RUN_KEYS, "algorithm", "layer", "bucket")
        .agg(pl.col(col).mean().alias("sparsity"))
        .sort(*RUN_KEYS, "layer", "bucket")
    )


def validation_peaks(metrics: pl.DataFrame) -> pl.DataFrame:
    """The checkpoint of each run with the best validation accuracy logged during training
    (the earliest on ties): the paper's "peak-validation" checkpoint, chosen without looking
    at the split the table reports. `metrics` holds RUN_KEYS, `checkpoint` (ES iteration or
    GRPO rollout) and `val/accuracy`."""
    return (
        metrics.filter(pl.col("val/accuracy").is_not_null())
        .sort("val/accuracy", "checkpoint", descending=[True, False])
        .group_by(RUN_KEYS, maintain_order=True)
        .first()
        .select(*RUN_KEYS, pl.col("checkpoint").alias("peak_step"), pl.col("val/accuracy").alias("peak_validation"))
    )


def accuracy_table(retention: pl.DataFrame, peaks: pl.DataFrame) -> pl.DataFrame:
    """Base, final and peak accuracy per (model, method, train task, eval task, probe), mean
    over seeds, with the final divergence from the base on prior tasks.

    Peak is each run's best checkpoint by validation accuracy (`validation_peaks`); every task
    and probe is read at that same checkpoint.
    """
    with_peak = retention.join(peaks, on=RUN_KEYS, how="left")
    per_run = with_peak.group_by(*RUN_KEYS, "eval_task", "probe").agg(
        pl.col("accuracy").filter(pl.col("step") == 0).first().alias("base"),
        pl.col("accuracy").sort_by("step").last().alias("final"),
        pl.col("accuracy").filter(pl.col("step") == pl.col("peak_step")).first().alias("at_peak"),
        pl.col("peak_step").first(),
        pl.col("kl_from_base").sort_by("step").last().alias("final_kl"),
    )
    return (
        per_run.group_by("model", "method", "train_task", "eval_task", "probe")
        .agg(
            pl.len().alias("seeds"),
            pl.col("base").mean(),
            pl.col("final").mean(),
            pl.col("at_peak").mean(),
            pl.col("peak_step").mean(),
            pl.col("final_kl").mean(),
        )
        .with_columns(
            (pl.col("final") - pl.col("base")).alias("final_minus_base"),
            (pl.col("at_peak") - pl.col("base")).alias("peak_minus_base"),
        )
        .sort("model", "train_task", "method", "eval_task", "probe")
    )


def precision_table(
    norms: pl.DataFrame, per_tensor: pl.DataFrame, drift: pl.DataFrame, methods: dict, thresholds: list[float]
) -> pl.DataFrame:
    """What storage precision and the authors' numerics do to the paper's two measures, at each
    run's final checkpoint, mean over seeds: ‖ΔW‖_F and the unchanged share as stored, and where
    an fp32 master was kept, as in the master and the share storage erased; for ES under the
    authors' numerics, the restores' summed drift as a share of ‖ΔW‖_F."""

    def numerics(spec: dict) -> str:
        if spec["algorithm"] == "es":
            return f"ES {spec.get('numerics', 'master')}, {spec.get('dtype', 'float32')}"
        return "GRPO fp32 master (AdamW)"

    final = norms.filter(pl.col("step") == pl.col("step").max().over(RUN_KEYS))
    stored = per_tensor.group_by(*RUN_KEYS, "step").agg(pl.col("stored_dtype").unique().sort().str.join("+"))
    shares = [
        c
        for tau in thresholds
        for c in (f"sparsity@{tau:g}/overall", f"master_sparsity@{tau:g}/overall", f"erased@{tau:g}/overall")
    ]
    final_drift = drift.filter(pl.col("step") == pl.col("step").max().over(RUN_KEYS)).select(*RUN_KEYS, "drift_total")
    per_run = (
        final.join(stored, on=[*RUN_KEYS, "step"], how="left")
        .join(final_drift, on=RUN_KEYS, how="left")
        .with_columns(
            pl.col("method").replace_strict({m: numerics(spec) for m, spec in methods.items()}).alias("numerics"),
            (pl.col("drift_total") / pl.col("fro_norm")).alias("drift_share"),
        )
    )
    return (
        per_run.group_by("model", "method", "train_task", "numerics", "stored_dtype")
        .agg(
            pl.len().alias("seeds"),
            pl.col("step").max(),
            pl.col("fro_norm").mean(),
            pl.col("master_fro_norm").mean(),
            *(pl.col(c).mean().alias(c.removesuffix("/overall")) for c in shares),
            pl.col("drift_share").mean(),
        )
        .sort("model", "train_task", "method")
    )


def svg(chart: alt.Chart) -> str:
    return vlc.vegalite_to_svg(chart.to_json())


def _table_html(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows():
        cells = "".join(
            f"<td>{v:.4g}</td>" if isinstance(v, float) else f"<td>{html.escape('' if v is None else str(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# Prose (headings, captions, style) is left out of mutation testing: no test should pin wording.
# pragma: no mutate start
SECTIONS = [
    (
        "tradeoff",
        "New-task against prior-task accuracy",
        "One point per checkpoint (step 0 is the base), coloured by step; the marker shape tells the "
        "method. Points moving right learn the new task; points moving down forget the prior one.",
    ),
    ("norm", "Size of the update", "Frobenius norm of θ_step − θ_base over all parameters, per checkpoint."),
    (
        "divergence",
        "How far the output distribution moved",
        "Mean per-token KL(base ‖ checkpoint) of the next-token distributions over each prior "
        "task's prompts: a probe-free measure of how much the model changed where it should not.",
    ),
    (
        "drift",
        "How much of ES's update is restore drift",
        "Under the authors' numerics every member is added and subtracted in place in the working "
        "dtype, and the subtraction can leave a weight one rounding step off. Per iteration: the "
        "distance from the base ‖θ_t − θ_0‖_F beside the drift those restores summed to, ‖Σ drift‖_F.",
    ),
    (
        "sparsity",
        "Where the update lands",
        "Share of entries left unchanged (|ΔW| ≤ τ) per layer and bucket at each run's final "
        "checkpoint; ES solid, GRPO dashed. Sparse updates stay near 1, dense ones near 0.",
    ),
]

ACCURACY_CAPTION = (
    "Mean over seeds. <em>base</em>: step 0; <em>final</em>: last checkpoint; <em>at_peak</em>: "
    "at each run's checkpoint with the best validation accuracy during training (<em>peak_step</em>, "
    "chosen without looking at the evaluation split). <em>probe</em>: "
    "<em>generative</em> is the authors' (greedy reply, first option digit); <em>loglikelihood</em> "
    "and <em>loglikelihood_norm</em> are the evaluation harnesses' acc and acc_norm. "
    "<em>final_kl</em>: mean per-token KL(base ‖ final checkpoint) on the prior task's prompts. "
    "Per-checkpoint 95 % intervals are in each run's retention.parquet."
)
PRECISION_CAPTION = (
    "At each run's final checkpoint, mean over seeds. <em>numerics</em>: how the run's arithmetic "
    "rounded (ES <em>authors</em>: in place in its dtype, restores that drift, the update rounded member "
    "by member; ES <em>master</em>: an exact fp32 master); <em>stored_dtype</em>: what the checkpoint "
    "holds. <em>fro_norm</em> and <em>sparsity@τ</em> (share of entries with |ΔW| ≤ τ, all parameters) "
    "are read from the stored checkpoint, as the authors' scripts read theirs; where the run kept its "
    "fp32 master (<code>save_master</code>), <em>master_*</em> are the same from the master and "
    "<em>erased@τ</em> the share of entries that moved by more than τ in the master but not as stored. "
    "<em>drift_share</em>: the restores' summed drift ‖Σ drift‖_F ÷ fro_norm (ES, authors' numerics). "
    "All differences are computed in fp32 against the base rounded to the dtype training started from."
)
STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
    "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "th{overflow-wrap:anywhere}"
)
# pragma: no mutate end


def render(
    retention: pl.DataFrame,
    weights: pl.DataFrame,
    per_tensor: pl.DataFrame,
    peaks: pl.DataFrame,
    precision: pl.DataFrame,
    drift: pl.DataFrame,
    prior_tasks: list[str],
    tau: float,
    out_html: str | Path,
    figure_paths: dict[str, str | Path],
    title: str,
) -> pl.DataFrame:
    """Write the report and its figures; return the accuracy table."""
    charts = {
        "tradeoff": tradeoff_chart(retention_pairs(retention, prior_tasks)),
        "norm": norm_chart(weights),
        "divergence": divergence_chart(retention),
        "drift": drift_chart(drift),
        "sparsity": sparsity_chart(layer_sparsity(per_tensor, tau), tau),
    }
    rendered = {key: svg(chart) for key, chart in charts.items()}
    for key, path in figure_paths.items():
        with atomic_path(path) as tmp:
            tmp.write_text(rendered[key])
    table = accuracy_table(retention, peaks)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for key, heading, text in SECTIONS:
        parts += [f"<h2>{heading}</h2>", f"<p>{text}</p>", rendered[key]]
    parts += [
        "<h2>Accuracy per task and method</h2>",
        f"<p>{ACCURACY_CAPTION}</p>",
        _table_html(table),
        "<h2>Storage precision and the authors' numerics</h2>",
        f"<p>{PRECISION_CAPTION}</p>",
        _table_html(precision),
    ]
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
    page = f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"
    with atomic_path(out_html) as tmp:
        tmp.write_text(page)
    return table


def collect(retention_paths, weight_paths, metrics_paths, runs: list[dict], methods: dict, thresholds: list[float]):
    """Read every run's tables; add each method's algorithm; sum update norms per checkpoint;
    find each run's peak-validation checkpoint; collect the ES runs' restore drift. `runs`
    (model, method, task, seed) is aligned with the metrics paths.

    Returns (retention, per-tensor weight differences, whole-model norms per checkpoint with
    step 0 = 0, validation peaks, per-iteration distance and drift of the ES runs).
    """
    from esforget.io import read_parquet
    from esforget.weight_diff import summarise

    algorithm = pl.col("method").replace_strict({m: spec["algorithm"] for m, spec in methods.items()})
    retention = pl.concat([read_parquet(p) for p in retention_paths]).with_columns(algorithm.alias("algorithm"))
    per_tensor = pl.concat([read_parquet(p) for p in weight_paths]).with_columns(algorithm.alias("algorithm"))
    norms = [
        {**dict(zip([*RUN_KEYS, "step"], key, strict=True)), **summarise(group, thresholds)}
        for key, group in per_tensor.group_by(*RUN_KEYS, "step")
    ]
    starts = per_tensor.select(RUN_KEYS).unique().with_columns(pl.lit(0).alias("step"), pl.lit(0.0).alias("fro_norm"))
    norms = pl.concat([starts, pl.DataFrame(norms)], how="diagonal_relaxed").sort(*RUN_KEYS, "step")
    metrics = [(read_parquet(p), run) for p, run in zip(metrics_paths, runs, strict=True)]
    validation = pl.concat([_validation_log(table, run) for table, run in metrics])
    checkpoints = retention.select(*RUN_KEYS, pl.col("step").alias("checkpoint")).unique()
    peaks = validation_peaks(validation.join(checkpoints, on=[*RUN_KEYS, "checkpoint"], how="semi"))
    drift_logs = [_drift_log(table, run) for table, run in metrics if "drift/total_norm" in table.columns]  # ES runs
    drift = pl.concat(drift_logs) if drift_logs else pl.DataFrame(schema=DRIFT_COLUMNS)
    return retention, per_tensor, norms, peaks, drift


DRIFT_COLUMNS = {
    "model": pl.String,
    "method": pl.String,
    "train_task": pl.String,
    "seed": pl.Int64,
    "step": pl.Int64,
    "update_total": pl.Float64,
    "drift_total": pl.Float64,
}


def _drift_log(metrics: pl.DataFrame, run: dict) -> pl.DataFrame:
    """(run keys, iteration, ‖θ_t − θ_0‖_F, ‖Σ restore drift‖_F) of an ES run's metrics; the
    drift is null where it was not tracked, 0 under an exact master."""
    return metrics.select(
        pl.lit(run["model"]).alias("model"),
        pl.lit(run["method"]).alias("method"),
        pl.lit(run["task"]).alias("train_task"),
        pl.lit(run["seed"], dtype=pl.Int64).alias("seed"),
        pl.col("step").cast(pl.Int64),
        pl.col("update/total_norm").cast(pl.Float64).alias("update_total"),
        pl.col("drift/total_norm").cast(pl.Float64).alias("drift_total"),
    )


def drift_chart(drift: pl.DataFrame) -> alt.Chart:
    """‖θ_t − θ_0‖_F and the restores' summed drift ‖Σ drift‖_F against iteration, per ES run
    under the authors' numerics (where drift was measured and is not 0)."""
    measured = drift.filter(pl.col("drift_total").max().over(RUN_KEYS) > 0)
    if measured.is_empty():
        return (
            alt.Chart(pl.DataFrame({"note": ["no ES run under the authors' numerics with drift tracked"]}))
            .mark_text(align="left")
            .encode(text="note:N")
            .properties(width=360, height=30)
        )
    long = measured.unpivot(
        index=[*RUN_KEYS, "step"], on=["update_total", "drift_total"], variable_name="measure", value_name="norm"
    ).with_columns(
        pl.col("measure").replace_strict({"update_total": "‖θ_t − θ_0‖_F", "drift_total": "‖Σ restore drift‖_F"})
    )
    return (
        alt.Chart(long)
        .mark_line()
        .encode(
            x=alt.X("step:Q", title="iteration"),
            y=alt.Y("norm:Q", title="Frobenius norm"),
            color=alt.Color("measure:N", title=None),
            detail="seed:N",
            tooltip=[*RUN_KEYS, "step", "measure", "norm"],
        )
        .properties(width=360, height=240)
        .facet(column=alt.Column("method:N", title="method"), row=alt.Row("train_task:N", title="trained on"))
        .resolve_scale(y="independent")  # runs at the paper's σ move two orders of magnitude less
    )


def _validation_log(metrics: pl.DataFrame, run: dict) -> pl.DataFrame:
    """(run keys, checkpoint, val/accuracy) from one run's metrics table; GRPO's checkpoints
    are named by rollout, ES's by iteration."""
    checkpoint = "rollout" if "rollout" in metrics.columns else "step"
    return metrics.select(
        pl.lit(run["model"]).alias("model"),
        pl.lit(run["method"]).alias("method"),
        pl.lit(run["task"]).alias("train_task"),
        pl.lit(run["seed"], dtype=pl.Int64).alias("seed"),
        pl.col(checkpoint).cast(pl.Int64).alias("checkpoint"),
        pl.col("val/accuracy").cast(pl.Float64),
    )
