"""Stage 6: one self-contained HTML page that answers the study's question with its numbers,
their intervals and what made them; every figure also as SVG and PNG files.

`collect` reads every run's tables; `esforget.report.summaries` averages them over seeds with
intervals; `esforget.report.findings` reads the verdicts off those intervals; `esforget.report.charts` draws
them. Charts are rendered to static SVG with vl-convert, so the page needs no JavaScript and
no network to open.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import polars as pl
import vl_convert as vlc
import yaml
from docutils.core import publish_parts

from esforget.analyze.weight_diff import summarise
from esforget.core.files import atomic_path, read_parquet
from esforget.report import charts, findings, predictors, summaries
from esforget.report.summaries import RUN_KEYS, over_seeds

FIGURES = ("tradeoff", "dose_norm", "dose_kl", "curves", "norm", "divergence", "sparsity", "drift")
"""Every figure of the report, by key (file names `figures/<key>.svg|png`, captions
`workflow/report/<key>.rst`)."""
TABLES = (
    "accuracy",
    "matched",
    "findings",
    "slopes_norm",
    "slopes_kl",
    "predictors",
    "dips",
    "precision",
    "checkpoints",
)
"""Every table of the report, by key (file names `<key>.parquet`)."""
PNG_SCALE = 2
"""PNG pixels per SVG pixel: sharp on high-density screens and in slides."""


@dataclass
class Collected:
    """Every run's tables, as `collect` read them."""

    retention: pl.DataFrame  # per run, checkpoint, evaluation task and probe (with `algorithm`)
    per_tensor: pl.DataFrame  # per run, checkpoint and tensor (with `algorithm`)
    norms: pl.DataFrame  # per run and checkpoint: ‖ΔW‖_F, ‖ΔW‖_F/‖W₀‖_F, sparsity over all parameters; step 0 = 0
    peaks: pl.DataFrame  # per run: the peak-validation checkpoint
    drift: pl.DataFrame  # per ES iteration: distance from the base and summed restore drift
    metrics: list[tuple[pl.DataFrame, dict]]  # each run's metrics table with its run


def collect(retention_paths, weight_paths, metrics_paths, runs: list[dict], methods: dict, thresholds: list[float]):
    """Read every run's tables; add each method's algorithm; sum update norms per checkpoint;
    find each run's peak-validation checkpoint; collect the ES runs' restore drift. `runs`
    (model, method, task, seed) is aligned with the metrics paths."""
    algorithm = pl.col("method").replace_strict({m: spec["algorithm"] for m, spec in methods.items()})
    retention = pl.concat([read_parquet(p) for p in retention_paths]).with_columns(algorithm.alias("algorithm"))
    needed = (*RUN_KEYS, "step", "fro_norm", "base_norm", "numel", *(f"sparsity@{tau:g}" for tau in thresholds))
    # diagonal: only runs compared with another method's update have `dot_reference` (analysis.compare_to)
    per_tensor = pl.concat(
        [read_parquet(p, columns=needed, nonempty=True) for p in weight_paths], how="diagonal_relaxed"
    )
    per_tensor = per_tensor.with_columns(algorithm.alias("algorithm"))
    norms = [
        {**dict(zip([*RUN_KEYS, "step"], key, strict=True)), **summarise(group, thresholds)}
        for key, group in per_tensor.group_by(*RUN_KEYS, "step")
    ]
    starts = (
        per_tensor.select(RUN_KEYS)
        .unique()
        .with_columns(pl.lit(0).alias("step"), pl.lit(0.0).alias("fro_norm"), pl.lit(0.0).alias("relative_norm"))
    )
    norms = pl.concat([starts, pl.DataFrame(norms)], how="diagonal_relaxed").sort(*RUN_KEYS, "step")
    tables = [read_parquet(p, columns=("step",), nonempty=True) for p in metrics_paths]  # a run logs every step
    metrics = list(zip(tables, runs, strict=True))
    validation = pl.concat([_validation_log(table, run) for table, run in metrics])
    checkpoints = retention.select(*RUN_KEYS, pl.col("step").alias("checkpoint")).unique()
    peaks = validation_peaks(validation.join(checkpoints, on=[*RUN_KEYS, "checkpoint"], how="semi"))
    drift_logs = [_drift_log(table, run) for table, run in metrics if "drift/total_norm" in table.columns]  # ES runs
    drift = pl.concat(drift_logs) if drift_logs else pl.DataFrame(schema=DRIFT_COLUMNS)
    return Collected(retention, per_tensor, norms, peaks, drift, metrics)


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


def precision_table(
    norms: pl.DataFrame, per_tensor: pl.DataFrame, drift: pl.DataFrame, methods: dict, thresholds: list[float]
) -> pl.DataFrame:
    """What storage precision and the authors' numerics do to the paper's two measures, at each
    run's final checkpoint, mean over seeds with intervals: ‖ΔW‖_F and the unchanged share as
    stored, and where an fp32 master was kept, as in the master and the share storage erased;
    for ES under the authors' numerics, the restores' summed drift as a share of ‖ΔW‖_F."""

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
        .rename({c: c.removesuffix("/overall") for c in shares})
    )
    values = ["fro_norm", "master_fro_norm", *(c.removesuffix("/overall") for c in shares), "drift_share"]
    return over_seeds(
        per_run.with_columns(pl.col(values).cast(pl.Float64)),
        ["model", "method", "train_task", "numerics", "stored_dtype", "step"],
        values,
    ).sort("model", "train_task", "method")


# --- the page -------------------------------------------------------------------------------

PERCENT_COLUMNS = {
    "base",
    "final",
    "at_peak",
    "final_minus_base",
    "peak_minus_base",
    "prior_change",
    "level",
    "drift_share",
}
"""Columns holding shares, shown in percent (or points, for changes) with one decimal."""


def _is_percent(column: str) -> bool:
    return column in PERCENT_COLUMNS or column.split("@")[0] in ("sparsity", "master_sparsity", "erased")


def _unit(column: str) -> str:
    """How a percent column reads: a change of accuracy in points, a share in %."""
    if not _is_percent(column):
        return ""
    return " (points)" if "change" in column or "minus" in column else " (%)"


def _number(value, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if percent:
        return f"{100 * value:.1f}"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:.4g}"


def table_html(frame: pl.DataFrame) -> str:
    """An HTML table: integers as integers, shares in percent with one decimal, a column with
    `_low`/`_high` companions as "value [low, high]", text escaped."""
    shown = [c for c in frame.columns if not (c.endswith(("_low", "_high")) and c.rsplit("_", 1)[0] in frame.columns)]
    head = "".join(
        f"<th>{html.escape(c)}{_unit(c)}{' [95 % interval]' if f'{c}_low' in frame.columns else ''}</th>" for c in shown
    )
    body = []
    for row in frame.iter_rows(named=True):
        cells = []
        for c in shown:
            value = row[c]
            if isinstance(value, int | float) or value is None:
                text = _number(value, _is_percent(c))
                if f"{c}_low" in row and _number(row[f"{c}_low"], False):
                    text += (
                        f" [{_number(row[f'{c}_low'], _is_percent(c))}, {_number(row[f'{c}_high'], _is_percent(c))}]"
                    )
            else:
                text = html.escape(str(value))
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<div class='table'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def render_figures(charts_by_key: dict[str, alt.TopLevelMixin], paths: dict[str, tuple[Path, Path]]) -> dict[str, str]:
    """Each chart as SVG (returned, to inline) and written to its SVG and PNG paths."""
    rendered = {}
    for key, chart in charts_by_key.items():
        spec = chart.configure_legend(labelLimit=0, titleLimit=0).to_json()  # legends never cut
        rendered[key] = vlc.vegalite_to_svg(spec)
        svg_path, png_path = paths[key]
        with atomic_path(svg_path) as tmp:
            tmp.write_text(rendered[key])
        with atomic_path(png_path) as tmp:
            tmp.write_bytes(vlc.vegalite_to_png(spec, scale=PNG_SCALE))
    return rendered


def caption_html(caption: str) -> str:
    """A figure's reStructuredText caption as HTML, as docutils renders it for Snakemake's report."""
    return publish_parts(caption, writer_name="html5", settings_overrides={"report_level": 4})["body"]


def tables(
    data: Collected, prior_tasks: list[str], thresholds: list[float], methods: dict, plain: dict | None = None
) -> dict[str, pl.DataFrame]:
    """Every table of the report (also written as parquet by the rule). `plain`: the plain ES
    and the reference GRPO the config names (`analysis.plain_es`, `analysis.compare_to`), if any."""
    checkpoints = summaries.checkpoint_table(data.retention, data.norms, prior_tasks)
    predictor_points = predictors.predictor_table(data.retention, data.norms, prior_tasks, thresholds[0])
    predictor_fits = predictors.predictor_fits(predictor_points)
    plain = plain or {}
    found = findings.all_findings(checkpoints, plain.get("es"), plain.get("grpo"))
    found += predictors.predictor_findings(predictor_points, predictor_fits)
    return {
        "checkpoints": checkpoints,
        "findings": pl.DataFrame(
            [
                {
                    "question": f.question,
                    "comparison": f.comparison,
                    "value": None if f.estimate is None else f.estimate.value,
                    "low": None if f.estimate is None else f.estimate.low,
                    "high": None if f.estimate is None else f.estimate.high,
                    "n": None if f.estimate is None else f.estimate.n,
                    "verdict": f.verdict,
                    "note": f.note,
                    "sentence": f.sentence(),
                }
                for f in found
            ],
            schema_overrides={"value": pl.Float64, "low": pl.Float64, "high": pl.Float64, "n": pl.Int64},
        ),
        "accuracy": summaries.accuracy_table(data.retention, data.peaks),
        "matched": summaries.matched_accuracy_table(checkpoints, findings.LEVELS),
        "slopes_norm": summaries.slope_table(checkpoints, "fro_norm"),
        "slopes_kl": summaries.slope_table(checkpoints.drop_nulls("kl"), "kl"),
        "predictors": predictor_fits,
        "dips": summaries.dip_table(checkpoints.filter(pl.col("probe").is_in(summaries.AUTHORS_PROBES))),
        "precision": precision_table(data.norms, data.per_tensor, data.drift, methods, thresholds),
    }


def figures(data: Collected, report_tables: dict[str, pl.DataFrame], prior_tasks, thresholds) -> dict:
    checkpoints = report_tables["checkpoints"]
    return {
        "tradeoff": charts.tradeoff_chart(summaries.tradeoff_points(data.retention, prior_tasks)),
        "dose_norm": charts.dose_chart(checkpoints, "fro_norm", "‖ΔW‖_F (all parameters)"),
        "dose_kl": charts.dose_chart(checkpoints.drop_nulls("kl"), "kl", "mean per-token KL(base ‖ checkpoint)"),
        "curves": charts.curves_chart(summaries.training_curves(data.metrics)),
        "norm": charts.norm_chart(summaries.norm_summary(data.norms)),
        "divergence": charts.divergence_chart(summaries.kl_summary(data.retention, prior_tasks)),
        "sparsity": charts.sparsity_chart(summaries.layer_sparsity(data.per_tensor, thresholds)),
        "drift": charts.drift_chart(data.drift),
    }


def render(
    data: Collected,
    prior_tasks: list[str],
    thresholds: list[float],
    methods: dict,
    record: dict,
    out_html: str | Path,
    figure_paths: dict[str, tuple[Path, Path]],
    captions: dict[str, str],
    title: str,
    plain: dict | None = None,
) -> dict[str, pl.DataFrame]:
    """Write the report page and its figures (`figure_paths`: key → SVG and PNG path; `captions`:
    key → the figure's caption in reStructuredText); return its tables. `plain`: as `tables`."""
    report_tables = tables(data, prior_tasks, thresholds, methods, plain)
    rendered = render_figures(figures(data, report_tables, prior_tasks, thresholds), figure_paths)
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(_intervals_statement(data.retention))}</p>"]
    parts += _findings_html(report_tables["findings"])
    for heading, content in SECTIONS:
        parts.append(f"<h2>{heading}</h2>")
        for key in content:
            if key in rendered:
                parts += [caption_html(captions[key]), rendered[key]]
            else:
                parts += [f"<p>{TABLE_CAPTIONS[key]}</p>", table_html(report_tables[key])]
    parts += _record_html(record)
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
    page = f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"
    with atomic_path(out_html) as tmp:
        tmp.write_text(page)
    return report_tables


def _intervals_statement(retention: pl.DataFrame) -> str:
    seeds = retention.group_by("model", "method", "train_task").agg(pl.col("seed").n_unique())["seed"]
    if seeds.max() == 1:
        return (
            "One seed per method: there is no between-seed interval. Intervals shown are the 95 % Wilson "
            "intervals over the test items of that one run; verdicts that need an interval over seeds are "
            "inconclusive."
        )
    count = f"{seeds.max()} seeds" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()} seeds"
    statement = (
        f"{count} per method. Values are means over seeds with 95 % Student-t intervals over seeds "
        "(n − 1 degrees of freedom)."
    )
    if seeds.min() == 1:
        statement += " A method with one seed shows the 95 % Wilson interval over its test items instead."
    return statement


def _findings_html(found: pl.DataFrame) -> list[str]:
    parts = ["<h2>Findings</h2>", f"<p>{FINDINGS_CAPTION}</p>"]
    for question, group in found.group_by("question", maintain_order=True):
        items = "".join(
            f"<li class='{html.escape(v.split()[0])}'>{html.escape(s)}</li>"
            for v, s in zip(group["verdict"], group["sentence"], strict=True)
        )
        parts.append(f"<h3>{html.escape(question[0])}</h3><ul>{items}</ul>")
    return parts


def _record_html(record: dict) -> list[str]:
    git = record["git"]
    dirty = {True: "yes: uncommitted changes to tracked files", False: "no", None: "unknown"}[git.get("dirty")]
    versions = pl.DataFrame({"package": list(record["versions"]), "version": list(record["versions"].values())})
    return [
        "<h2>What made this report</h2>",
        f"<p>Code: commit <code>{html.escape(git['commit'])}</code>; tree dirty: {dirty}. Training devices: "
        f"{html.escape(', '.join(record['devices']))}; this page rendered on {html.escape(record['device'])}.</p>",
        "<h3>Packages</h3>",
        table_html(versions),
        "<h3>Data (sha256 of each split, from its manifest)</h3>",
        table_html(record["data"]),
        "<h3>Wall time per job (Snakemake benchmark files)</h3>",
        table_html(record["times"]),
        "<h3>Resolved config</h3>",
        f"<pre>{html.escape(yaml.safe_dump(json.loads(json.dumps(record['config'])), sort_keys=True))}</pre>",
    ]


# Prose (headings, captions, style) is left out of mutation testing: no test should pin wording.
# pragma: no mutate start
SECTIONS = [
    ("New-task against prior-task accuracy", ["tradeoff"]),
    ("Forgetting at matched new-task accuracy", ["matched"]),
    ("Does forgetting follow the size of the update?", ["dose_norm", "slopes_norm", "dose_kl", "slopes_kl"]),
    ("What predicts forgetting", ["predictors"]),
    ("Drift or lasting loss", ["dips"]),
    ("Training", ["curves"]),
    ("Size of the update", ["norm"]),
    ("How far the output distribution moved", ["divergence"]),
    ("Where the update lands", ["sparsity"]),
    ("Storage precision and the authors' numerics", ["precision", "drift"]),
    ("Accuracy per task and method", ["accuracy"]),
]
"""The page after its findings: (heading, the figures and tables under it, in order). A figure's
caption is its reStructuredText caption (`workflow/report/<key>.rst`, which Snakemake's own report
shows too); a table's is in `TABLE_CAPTIONS`."""
TABLE_CAPTIONS = {
    "matched": "Prior-task change (points) where each run's new-task accuracy first reaches its base + level, "
    "linearly interpolated between the checkpoints around the crossing; mean over the seeds that reach it "
    "(<em>reached</em> of <em>runs</em>; the others are counted, not dropped).",
    "slopes_norm": "Each run's least-squares slope of prior-task change on ‖ΔW‖_F (points per unit norm), mean "
    "over seeds: a run's checkpoints are not independent, its seeds are.",
    "slopes_kl": "Each run's least-squares slope of prior-task change on KL(base ‖ checkpoint) (points per unit "
    "KL), mean over seeds.",
    "predictors": "Each measure of how far a checkpoint moved against the prior-task change it shows (points, "
    "the authors' probe), over every checkpoint after the base: <em>r2</em> of the least-squares line and "
    "Spearman's <em>rho</em>, over all runs (<em>scope</em> all) and within each algorithm, with 95 % "
    "intervals from a bootstrap over runs (1,000 draws; a run's checkpoints are not independent). "
    "<em>kl_sampled_new</em>: KL(base ‖ checkpoint) on replies the base samples to the new task's prompts "
    "(RL's Razor); <em>kl_prior</em>: on the prior task's prompts; <em>relative_norm</em>: ‖ΔW‖_F / ‖W₀‖_F; "
    "<em>fro_norm</em>: ‖ΔW‖_F; <em>unchanged</em>: share of entries with |ΔW| ≤ τ (the first τ); "
    "<em>cosine_reference</em>: cosine to the final update of the method named by analysis.compare_to. "
    "A measure not taken in this configuration is left out.",
    "dips": "Each run's deepest prior-task change over its checkpoints (<em>deepest</em>, points; 0 if it "
    "never fell below the base), its last checkpoint's (<em>final</em>) and what came back between them "
    "(<em>recovered</em> = final − deepest), mean over seeds; <em>median_deepest_step</em>: where the dip "
    "was. A loss that is transient drift shows a deep dip and a final change near 0.",
    "precision": "At each run's final checkpoint, mean over seeds. <em>numerics</em>: how the run's arithmetic "
    "rounded (ES <em>authors</em>: in place in its dtype, restores that drift, the update rounded member by "
    "member; ES <em>master</em>: an exact fp32 master); <em>stored_dtype</em>: what the checkpoint holds. "
    "<em>fro_norm</em> and <em>sparsity@τ</em> (share of entries with |ΔW| ≤ τ) are read from the stored "
    "checkpoint, as the authors' scripts read theirs; where the run kept its fp32 master, <em>master_*</em> "
    "are the same from the master and <em>erased@τ</em> the share that moved by more than τ in the master "
    "but not as stored. <em>drift_share</em>: the restores' summed drift ÷ fro_norm. All differences are "
    "computed in fp32 against the base rounded to the dtype training started from.",
    "accuracy": "Mean over seeds. <em>base</em>: step 0; <em>final</em>: last checkpoint; <em>at_peak</em>: at "
    "each run's checkpoint with the best validation accuracy during training (<em>peak_step</em>, chosen "
    "without looking at the evaluation split). <em>probe</em>: <em>generative</em> is the authors' (greedy "
    "reply, first option digit); <em>loglikelihood</em> and <em>loglikelihood_norm</em> are the evaluation "
    "harnesses' acc and acc_norm. <em>final_kl</em>: mean per-token KL(base ‖ final checkpoint) on the prior "
    "task's prompts.",
}
FINDINGS_CAPTION = (
    "Generated from the tables below, not written by hand. Each line: the comparison, its value with the 95 % "
    "interval and sample size, and the verdict read off the interval: <em>supported</em> (the interval excludes "
    "zero on the side the question claims), <em>not supported</em> (it excludes zero on the other side, or an "
    "accuracy difference lies within ±1 point), <em>inconclusive at this sample</em> (otherwise, and always "
    "without an interval)."
)
STYLE = (
    "body{font-family:sans-serif;max-width:1250px;margin:2em auto}"
    "div.table{overflow-x:auto;margin:1em 0}table{border-collapse:collapse;font-size:0.85em}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}"
    "li.supported{color:#1a6b1a}li.not{color:#8a1c1c}li.inconclusive{color:#555}"
    "pre{background:#f6f6f6;padding:1em;font-size:0.8em;overflow-x:auto}"
)
# pragma: no mutate end


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
