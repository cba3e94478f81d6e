"""The report's figures: Altair specs drawn from the summary tables (`esforget.report.summaries`).

Where a figure shows a mean over seeds it draws the 95 % interval with it — a band along a
line, a bar across a point — from the `_low`/`_high` columns of the summary it is given
(between seeds; the items' Wilson interval where a method has one seed).
"""

from __future__ import annotations

import altair as alt
import polars as pl

RUN_KEYS = ["model", "method", "train_task", "seed"]
WIDTH, HEIGHT = 340, 230


def _band(frame: pl.DataFrame, x: alt.X, field: str, title: str, color: str = "method") -> alt.LayerChart:
    """Mean of `field` as a line with points, its interval as a band, coloured by `color`."""
    base = alt.Chart(frame).encode(x=x, color=alt.Color(f"{color}:N"))
    band = base.mark_area(opacity=0.2).encode(y=alt.Y(f"{field}_low:Q", title=title), y2=f"{field}_high:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y(f"{field}:Q", title=title),
        tooltip=[
            c for c in frame.columns if c == field or c.startswith(field + "_") or c in ("method", "step", "seeds")
        ],
    )
    return (band + line).properties(width=WIDTH, height=HEIGHT)


def tradeoff_chart(pairs: pl.DataFrame) -> alt.FacetChart:
    """New-task against prior-task accuracy per checkpoint, mean over seeds with both intervals
    as bars, the checkpoints of a method joined in step order."""
    base = alt.Chart(pairs).encode(
        x=alt.X("new_accuracy:Q", title="new-task accuracy", scale=alt.Scale(zero=False)),
        y=alt.Y("prior_accuracy:Q", title="prior-task accuracy", scale=alt.Scale(zero=False)),
    )
    path = base.mark_line(opacity=0.35).encode(detail="method:N", order="step:Q", color=alt.value("gray"))
    x_bars = base.mark_rule(opacity=0.5).encode(x="new_accuracy_low:Q", x2="new_accuracy_high:Q", detail="method:N")
    y_bars = base.mark_rule(opacity=0.5).encode(y="prior_accuracy_low:Q", y2="prior_accuracy_high:Q", detail="method:N")
    points = base.mark_point(size=70, filled=True).encode(
        color=alt.Color("step:Q", scale=alt.Scale(scheme="viridis")),
        shape=alt.Shape("method:N"),
        tooltip=["method", "step", "seeds", "interval", "new_accuracy", "prior_accuracy"],
    )
    return (
        (path + x_bars + y_bars + points)
        .properties(width=WIDTH, height=HEIGHT + 30)
        .facet(column=alt.Column("prior_task:N", title="prior task"), row=alt.Row("train_task:N", title="trained on"))
    )


def norm_chart(norms: pl.DataFrame) -> alt.FacetChart:
    """‖ΔW‖_F against step, mean over seeds with its interval."""
    return _band(norms, alt.X("step:Q"), "fro_norm", "‖ΔW‖_F (all parameters)").facet(
        column=alt.Column("train_task:N", title="trained on")
    )


def divergence_chart(kl: pl.DataFrame) -> alt.FacetChart:
    """KL(base ‖ checkpoint) on each prior task's prompts against step, mean over seeds."""
    return _band(kl, alt.X("step:Q"), "kl", "mean per-token KL(base ‖ checkpoint)").facet(
        column=alt.Column("prior_task:N", title="prompts of prior task"),
        row=alt.Row("train_task:N", title="trained on"),
    )


def curves_chart(curves: pl.DataFrame) -> alt.FacetChart:
    """Training curves per method: ES fitness (mean, max) and GRPO reward (mean) per step and
    validation accuracy per checkpoint, mean over seeds with the interval as a band."""
    return (
        _band(curves, alt.X("step:Q", title="iteration (ES) / optimizer step (GRPO)"), "value", "")
        .facet(column=alt.Column("measure:N", title=None), row=alt.Row("train_task:N", title="trained on"))
        .resolve_scale(y="independent")
    )


def dose_chart(checkpoints: pl.DataFrame, x: str, title: str) -> alt.FacetChart:
    """Prior-task change against `x` (‖ΔW‖_F or KL), every checkpoint of every run, with each
    method's least-squares line: "forgetting follows the dose" puts the methods on one line,
    "ES forgets more at equal dose" puts ES's below."""
    frame = checkpoints.with_columns((100 * pl.col("prior_change")).alias("prior_change_points"))
    base = alt.Chart(frame).encode(
        x=alt.X(f"{x}:Q", title=title),
        y=alt.Y("prior_change_points:Q", title="prior-task change (points)"),
        color=alt.Color("method:N"),
    )
    points = base.mark_point(opacity=0.6).encode(
        shape=alt.Shape("algorithm:N"), tooltip=[*RUN_KEYS, "step", x, "prior_change_points"]
    )
    fits = base.transform_regression(x, "prior_change_points", groupby=["method"]).mark_line()
    return (
        (points + fits)
        .properties(width=WIDTH, height=HEIGHT)
        .facet(column=alt.Column("prior_task:N", title="prior task"), row=alt.Row("probe:N", title="probe"))
    )


def sparsity_chart(per_layer: pl.DataFrame) -> alt.FacetChart:
    """Share of entries with |ΔW| ≤ τ per layer and bucket at the final checkpoint, mean over
    seeds, one panel per τ; ES solid, GRPO dashed."""
    return (
        alt.Chart(per_layer)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O"),
            y=alt.Y("sparsity:Q", title="share of |ΔW| ≤ τ", scale=alt.Scale(domain=[0, 1])),
            color="bucket:N",
            strokeDash=alt.StrokeDash("algorithm:N", title="algorithm"),
            detail="method:N",
            tooltip=["model", "method", "train_task", "tau", "layer", "bucket", "sparsity", "seeds"],
        )
        .properties(width=WIDTH, height=HEIGHT)
        .facet(
            column=alt.Column("train_task:N", title="trained on (final checkpoints)"), row=alt.Row("tau:N", title="τ")
        )
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
            .properties(width=WIDTH, height=30)
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
        .properties(width=WIDTH, height=HEIGHT)
        .facet(column=alt.Column("method:N", title="method"), row=alt.Row("train_task:N", title="trained on"))
        .resolve_scale(y="independent")  # runs at the paper's σ move two orders of magnitude less
    )
