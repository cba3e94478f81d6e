"""The report: its tables read every run the way docs/outputs.md says (the peak checkpoint from the
training metrics, never from the split reported), its figures draw those tables, and its page
holds every figure, table, finding and what made them."""

import shutil

import polars as pl
import pytest

from esforget.report import charts, findings, predictors, summaries
from esforget.report import page as report
from esforget.report.page import collect, precision_table, render, table_html, validation_peaks
from esforget.report.summaries import accuracy_table, layer_sparsity, tradeoff_points
from tests.shared import REPO

RUN = {"model": "tiny", "method": "es", "train_task": "countdown", "seed": 0}


def retention(rows):
    return pl.DataFrame(
        [
            {
                **RUN,
                "step": s,
                "eval_task": t,
                "probe": "generative",
                "accuracy": a,
                "ci_low": a - 0.05,
                "ci_high": a + 0.05,
                "kl_from_base": None,
            }
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
            for c, v in [(30, 0.45), (5, 0.9), (25, None), (10, 0.30), (20, 0.45)]  # logged in any order
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
    # one seed: the items' Wilson interval, as its retention row gives it
    assert out["arith"]["interval"] == "Wilson, items"
    assert (out["arith"]["final_low"], out["arith"]["final_high"]) == pytest.approx((0.65, 0.75))


def test_precision_table_reads_each_runs_final_checkpoint_and_its_drift_share():
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
    assert es["fro_norm_low"] == pytest.approx(3.0 - 12.706, abs=1e-2)  # norms 2 and 4: sd √2, t at 1 dof
    grpo = table["grpo_bf16"]
    assert (grpo["stored_dtype"], grpo["master_fro_norm"], grpo["erased@1e-06"]) == ("bfloat16", 0.6, 0.9)
    assert grpo["drift_share"] is None


def test_precision_rows_come_sorted_by_model_task_and_method_with_the_default_numerics_named():
    """Runs listed in any order; a method that does not set `numerics` or `dtype` runs the
    defaults (ES master, float32), which the table names."""
    methods = {m: {"algorithm": "es"} for m in ("f_es", "e_es", "d_es", "c_es", "b_es")}
    methods["a_es"] = {"algorithm": "es", "numerics": "authors", "dtype": "float16"}
    methods["grpo"] = {"algorithm": "grpo", "checkpoint_dtype": "bfloat16"}
    listed = [("tiny", m, "countdown") for m in methods] + [("small", "b_es", "countdown"), ("tiny", "f_es", "arith")]
    runs = [{"model": model, "method": method, "train_task": task, "seed": 0} for model, method, task in listed]
    norms = pl.DataFrame(
        [
            {
                **run,
                "step": 5,
                "fro_norm": 1.0,
                "master_fro_norm": None,
                "sparsity@1e-06/overall": 0.5,
                "master_sparsity@1e-06/overall": None,
                "erased@1e-06/overall": None,
            }
            for run in runs
        ],
        schema_overrides={
            c: pl.Float64 for c in ("master_fro_norm", "master_sparsity@1e-06/overall", "erased@1e-06/overall")
        },
    )
    per_tensor = norms.select("model", "method", "train_task", "seed", "step").with_columns(
        stored_dtype=pl.when(pl.col("method") == "grpo").then(pl.lit("bfloat16")).otherwise(pl.lit("float32"))
    )
    per_tensor = pl.concat(
        [per_tensor, per_tensor.filter(pl.col("method") == "grpo").with_columns(stored_dtype=pl.lit("float32"))]
    )
    drift = pl.DataFrame(
        schema={
            **{k: norms.schema[k] for k in ("model", "method", "train_task", "seed", "step")},
            "drift_total": pl.Float64,
        }
    )

    table = precision_table(norms, per_tensor, drift, methods, [1e-6])

    assert table.select("model", "train_task", "method", "numerics", "stored_dtype").rows() == [
        ("small", "countdown", "b_es", "ES master, float32", "float32"),
        ("tiny", "arith", "f_es", "ES master, float32", "float32"),
        ("tiny", "countdown", "a_es", "ES authors, float16", "float32"),
        *[("tiny", "countdown", m, "ES master, float32", "float32") for m in ("b_es", "c_es", "d_es", "e_es", "f_es")],
        ("tiny", "countdown", "grpo", "GRPO fp32 master (AdamW)", "bfloat16+float32"),  # tensors stored both ways
    ]


def test_norms_come_in_step_order_whatever_order_the_analysis_wrote_them(tmp_path):
    steps = list(range(80, 0, -10))  # written newest first
    paths = {}
    for kind, frame in (
        ("retention", retention_rows("es", [(s, 0.5, 0.5) for s in [0, *steps]])),
        ("weights", per_tensor_rows("es", steps)),
        ("metrics", pl.DataFrame({"step": steps[::-1], "val/accuracy": [0.5] * len(steps)})),
    ):
        paths[kind] = tmp_path / f"{kind}.parquet"
        frame.write_parquet(paths[kind])
    run = {"model": "tiny", "method": "es", "task": "countdown", "seed": 0}
    norms = collect([paths["retention"]], [paths["weights"]], [paths["metrics"]], [run], METHODS, THRESHOLDS).norms
    assert norms["step"].to_list() == [0, *sorted(steps)]


# --- collect: every run's files into the report's tables -------------------------------------

THRESHOLDS = [1e-6]
METHODS = {"es": {"algorithm": "es"}, "grpo": {"algorithm": "grpo"}}


def retention_rows(method: str, steps_and_accuracy: list[tuple[int, float, float]]) -> pl.DataFrame:
    """A run's retention table: the new task (countdown) and a prior one (arith) per checkpoint,
    by the authors' probe and by log-likelihood (which the trade-off must ignore)."""
    rows = []
    for step, new, prior in steps_and_accuracy:
        for task, accuracy in (("countdown", new), ("arith", prior)):
            rows.append(
                {
                    **RUN,
                    "method": method,
                    "step": step,
                    "eval_task": task,
                    "probe": "generative",
                    "accuracy": accuracy,
                    "ci_low": accuracy - 0.05,
                    "ci_high": accuracy + 0.05,
                    "kl_from_base": 0.01 * step,
                    "kl_sampled": 0.02 * step,
                }
            )
        rows.append(
            {
                **RUN,
                "method": method,
                "step": step,
                "eval_task": "arith",
                "probe": "loglikelihood",
                "accuracy": 0.99,
                "ci_low": 0.97,
                "ci_high": 1.0,
                "kl_from_base": 0.01 * step,
                "kl_sampled": 0.02 * step,
            }
        )
    return pl.DataFrame(rows)


def per_tensor_rows(method: str, steps: list[int]) -> pl.DataFrame:
    """Two tensors per checkpoint whose ‖ΔW‖_F are 3·step and 4·step: 5·step for the model."""
    rows = [
        {
            **RUN,
            "method": method,
            "step": step,
            "tensor": name,
            "layer": 0,
            "bucket": bucket,
            "stored_dtype": "float32",
            "numel": numel,
            "fro_norm": norm * step,
            "base_norm": 10 * norm,
            "sparsity@1e-06": sparsity,
            "master_fro_norm": None,
            "master_sparsity@1e-06": None,
            "erased@1e-06": None,
        }
        for step in steps
        for name, bucket, numel, norm, sparsity in (("q", "Q", 10, 3.0, 0.5), ("mlp", "MLP", 30, 4.0, 0.1))
    ]
    return pl.DataFrame(
        rows, schema_overrides={c: pl.Float64 for c in ("master_fro_norm", "master_sparsity@1e-06", "erased@1e-06")}
    )


@pytest.fixture()
def run_files(tmp_path):
    """An ES run (checkpoints at iterations 3 and 6) and a GRPO run of 2 optimizer steps per
    rollout (checkpoints at rollouts 2 and 4, i.e. optimizer steps 4 and 8), as their stages
    write them."""
    es_metrics = pl.DataFrame(
        {
            "step": [1, 2, 3, 4, 5, 6],
            "val/accuracy": [None, 0.9, 0.4, None, None, 0.4],  # 0.9 at iteration 2: no checkpoint there
            "update/total_norm": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            "drift/total_norm": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05],
            "fitness/mean": [0.1, 0.2, 0.2, 0.3, 0.3, 0.4],
        }
    )
    grpo_metrics = pl.DataFrame(
        {
            "step": [1, 2, 3, 4, 5, 6, 7, 8],
            "rollout": [1, 1, 2, 2, 3, 3, 4, 4],
            "val/accuracy": [None, None, None, 0.6, None, None, None, 0.5],
            "reward/mean": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4],
        }
    )
    files = {"retention": [], "weights": [], "metrics": []}
    for method, metrics, steps, accuracy in (
        ("es", es_metrics, [3, 6], [(0, 0.2, 0.9), (3, 0.3, 0.8), (6, 0.5, 0.6)]),
        ("grpo", grpo_metrics, [2, 4], [(0, 0.2, 0.9), (2, 0.4, 0.9), (4, 0.45, 0.85)]),
    ):
        for kind, frame in (
            ("retention", retention_rows(method, accuracy)),
            ("weights", per_tensor_rows(method, steps)),
            ("metrics", metrics),
        ):
            path = tmp_path / f"{method}-{kind}.parquet"
            frame.write_parquet(path)
            files[kind].append(path)
    runs = [{"model": "tiny", "method": m, "task": "countdown", "seed": 0} for m in ("es", "grpo")]
    return files, runs


@pytest.mark.parametrize(
    "damage, message",
    [
        ("weights", r"missing column\(s\) \['fro_norm'\]"),
        ("metrics", r"no rows"),
    ],
)
def test_a_table_the_report_reads_is_checked_on_open_naming_it(run_files, damage, message):
    files, runs = run_files
    path = files[damage][0]
    table = pl.read_parquet(path)
    table = table.drop("fro_norm") if damage == "weights" else table.clear()
    table.write_parquet(path)
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        collect(files["retention"], files["weights"], files["metrics"], runs, METHODS, THRESHOLDS)


def test_collect_sums_norms_per_checkpoint_and_names_grpo_peaks_by_rollout(run_files):
    files, runs = run_files
    data = collect(files["retention"], files["weights"], files["metrics"], runs, METHODS, THRESHOLDS)

    assert set(zip(data.retention["method"], data.retention["algorithm"], strict=True)) == {
        ("es", "es"),
        ("grpo", "grpo"),
    }
    assert data.per_tensor["algorithm"].unique().sort().to_list() == ["es", "grpo"]
    assert data.norms.select("method", "step", "fro_norm").rows() == [
        ("es", 0, 0.0),
        ("es", 3, 15.0),
        ("es", 6, 30.0),
        ("grpo", 0, 0.0),
        ("grpo", 2, 10.0),
        ("grpo", 4, 20.0),
    ]
    # ‖ΔW‖ / ‖W₀‖ with ‖W₀‖ = √(30² + 40²) = 50 over the two tensors
    es_relative = data.norms.filter(pl.col("method") == "es")["relative_norm"].to_list()
    assert es_relative == pytest.approx([0.0, 0.3, 0.6])
    es_row = data.norms.filter((pl.col("method") == "es") & (pl.col("step") == 3)).row(0, named=True)
    assert es_row["sparsity@1e-06/overall"] == pytest.approx((10 * 0.5 + 30 * 0.1) / 40)
    assert es_row["sparsity@1e-06/tensor_mean"] == pytest.approx(0.3)
    # ES: the tie between iterations 3 and 6 goes to the earlier; iteration 2 was no checkpoint.
    # GRPO: validation at optimizer step 4 belongs to rollout 2, the checkpoint it names.
    assert data.peaks.select("method", "peak_step", "peak_validation").sort("method").rows() == [
        ("es", 3, 0.4),
        ("grpo", 2, 0.6),
    ]
    assert data.drift["method"].unique().to_list() == ["es"]  # only ES logs restore drift
    assert data.drift.select("step", "update_total", "drift_total").row(-1) == (6, 0.6, 0.05)
    # runs keyed alike in every table: the seed an Int64, as the retention and weight tables hold it
    assert data.drift["seed"].unique().to_list() == [0] and data.peaks["seed"].to_list() == [0, 0]
    assert data.drift.schema["seed"] == data.peaks.schema["seed"] == data.retention.schema["seed"] == pl.Int64
    assert [run["method"] for _, run in data.metrics] == ["es", "grpo"]


def test_the_trade_off_pairs_each_checkpoints_new_and_prior_accuracy_by_the_authors_probe(run_files):
    files, runs = run_files
    retention = collect(files["retention"], files["weights"], files["metrics"], runs, METHODS, THRESHOLDS).retention
    pairs = tradeoff_points(retention, prior_tasks=["arith"]).sort("method", "step")
    assert pairs.select("method", "step", "prior_task", "new_accuracy", "prior_accuracy").rows() == [
        ("es", 0, "arith", 0.2, 0.9),
        ("es", 3, "arith", 0.3, 0.8),
        ("es", 6, "arith", 0.5, 0.6),
        ("grpo", 0, "arith", 0.2, 0.9),
        ("grpo", 2, "arith", 0.4, 0.9),
        ("grpo", 4, "arith", 0.45, 0.85),
    ]  # the log-likelihood rows (0.99) are not the authors' probe of a generative task
    assert pairs["prior_accuracy_low"].to_list() == pytest.approx([0.85, 0.75, 0.55, 0.85, 0.85, 0.80])  # Wilson


def test_layer_sparsity_is_the_mean_over_a_layers_tensors_at_the_final_checkpoint_at_every_tau():
    frame = pl.DataFrame(
        {
            **{k: [v] * 5 for k, v in RUN.items()},
            "algorithm": ["es"] * 5,
            "step": [10, 10, 20, 20, 20],
            "layer": [0, 0, 0, 0, None],
            "bucket": ["MLP", "MLP", "MLP", "MLP", "embedding"],
            "sparsity@1e-06": [1.0, 1.0, 0.2, 0.4, 0.0],
            "sparsity@0.001": [1.0, 1.0, 0.6, 0.8, 0.0],
        }
    )
    out = layer_sparsity(frame, [1e-6, 1e-3])
    assert out.select("tau", "layer", "bucket", "sparsity").rows() == [
        ("0.001", 0, "MLP", pytest.approx(0.7)),
        ("1e-06", 0, "MLP", pytest.approx(0.3)),
    ]


def test_tables_show_integers_as_integers_shares_in_percent_and_intervals_in_brackets():
    frame = pl.DataFrame(
        {
            "a<b": [1.234567, None],
            "name": ["x&y", "z"],
            "n": [3, 1200],
            "peak_step": [150.0, 25.0],
            "final": [0.385, 0.5],
            "final_low": [0.342, float("nan")],
            "final_high": [0.429, float("nan")],
        }
    )
    assert table_html(frame) == (
        "<div class='table'><table><thead><tr><th>a&lt;b</th><th>name</th><th>n</th><th>peak_step</th>"
        "<th>final (%) [95 % interval]</th></tr></thead><tbody>"
        "<tr><td>1.235</td><td>x&amp;y</td><td>3</td><td>150</td><td>38.5 [34.2, 42.9]</td></tr>"
        "<tr><td></td><td>z</td><td>1,200</td><td>25</td><td>50.0</td></tr></tbody></table></div>"
    )


def test_a_low_or_high_column_is_shown_unless_it_bounds_a_column_of_the_table():
    head = table_html(pl.DataFrame({"ci_low": [0.1], "final": [0.5], "final_low": [0.4], "final_high": [0.6]}))
    assert "<th>ci_low</th><th>final (%) [95 % interval]</th></tr>" in head


def test_legends_show_whole_names_and_the_png_is_drawn_at_twice_the_svgs_size(tmp_path):
    import re

    import altair as alt

    name = "es_sigma7.5e-3_fp16_authors_paper_steps"
    title = "method (the named hyper-parameter set each run was trained with)"
    frame = pl.DataFrame({"x": [1, 2], "method": [name, "grpo"]})
    chart = alt.Chart(frame).mark_point().encode(x="x:Q", color=alt.Color("method:N", title=title))
    svg = report.render_figures({"f": chart}, {"f": (tmp_path / "f.svg", tmp_path / "f.png")})["f"]
    assert f">{name}</text>" in svg and f">{title}</text>" in svg  # drawn whole, not cut to "…"
    svg_width = float(re.search(r'<svg[^>]* width="([\d.]+)"', svg).group(1))
    png_width = int.from_bytes((tmp_path / "f.png").read_bytes()[16:20], "big")  # the IHDR chunk's width
    assert png_width == round(report.PNG_SCALE * svg_width)


def test_a_caption_is_set_as_html_and_a_slip_in_it_shows_no_docutils_message():
    """Snakemake's report shows the same captions; the page shows a stray `|` as text, not a
    docutils error box (the caption test refuses such slips in the shipped captions)."""
    assert (
        report.caption_html("share of ``|ΔW| ≤ τ``")
        == '<p>share of <span class="docutils literal">|ΔW| ≤ τ</span></p>\n'
    )
    assert report.caption_html("share of entries (|ΔW| ≤ τ)") == "<p>share of entries (|ΔW| ≤ τ)</p>\n"


def test_changes_of_accuracy_read_in_points_and_shares_in_percent():
    head = table_html(pl.DataFrame({"prior_change": [0.1], "final_minus_base": [0.2], "final": [0.5], "n": [3]}))
    assert "<th>prior_change (points)</th><th>final_minus_base (points)</th><th>final (%)</th><th>n</th>" in head


CAPTIONS = {key: (REPO / "workflow" / "report" / f"{key}.rst").read_text() for key in report.FIGURES}
"""Each figure's caption, as the rule passes them."""

RECORD = {
    "git": {"commit": "abc123", "dirty": True},
    "config": {"seeds": [0]},
    "versions": {"torch": "2.13.0"},
    "data": pl.DataFrame({"data": ["countdown-1"], "split": ["test"], "rows": [32], "sha256": ["f00"]}),
    "devices": ["cpu (test)"],
    "device": "cpu (test)",
    "times": pl.DataFrame({"job": ["tiny/base/prepare_base_model"], "seconds": [1.5], "max_rss_mb": [10.0]}),
}


def test_render_writes_a_page_with_findings_every_figure_and_what_made_it(run_files, tmp_path):
    files, runs = run_files
    data = collect(files["retention"], files["weights"], files["metrics"], runs, METHODS, THRESHOLDS)
    figures = {key: (tmp_path / f"{key}.svg", tmp_path / f"{key}.png") for key in report.FIGURES}

    page_path = tmp_path / "report.html"
    tables = render(data, ["arith"], THRESHOLDS, METHODS, RECORD, page_path, figures, CAPTIONS, "a <test> report")

    page = (tmp_path / "report.html").read_text()
    assert "<title>a &lt;test&gt; report</title>" in page
    assert page.count("<svg") == len(figures)  # inlined: the page opens without its figure files
    for key, (svg, png) in figures.items():
        assert "role-mark" in svg.read_text(), f"figure {key} drew nothing"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "One seed per method: there is no between-seed interval" in page
    assert page.index("<h2>Findings</h2><p>Generated from the tables below") < page.index(
        "<h2>New-task against prior-task accuracy</h2>"
    )
    # each figure's caption, from its reStructuredText, right before it: ``|ΔW| ≤ τ`` set as code
    sparsity_caption = page.index('unchanged (<span class="docutils literal">|ΔW| ≤ τ</span>) per layer')
    assert sparsity_caption < page.index("<svg", sparsity_caption) < page.index("<h2>Storage precision")
    for sentence in tables["findings"]["sentence"]:
        assert sentence.replace("&", "&amp;") in page.replace("&#x27;", "'")
    assert "commit <code>abc123</code>; tree dirty: yes" in page and "<td>f00</td>" in page
    # what made it, last: packages, data, every job's time, the resolved config as YAML
    made = page[page.index("<h2>What made this report</h2>") :]
    for heading in (
        "Packages",
        "Data (sha256 of each split, from its manifest)",
        "Wall time per job (Snakemake benchmark files)",
    ):
        assert f"<h3>{heading}</h3>" in made
    assert "<td>tiny/base/prepare_base_model</td>" in made and "<td>2.13.0</td>" in made
    assert made.endswith("<h3>Resolved config</h3><pre>seeds:\n- 0\n</pre></body></html>")
    assert tables["findings"]["note"][0] == "runs that never reached the level: ES 0 of 1, GRPO 0 of 1"
    first = findings.all_findings(tables["checkpoints"])[0]

    def nan_as_none(row: dict) -> dict:
        return {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}

    assert nan_as_none(tables["findings"].row(0, named=True) | {"sentence": None}) == nan_as_none(
        {
            "question": first.question,
            "comparison": first.comparison,
            "value": first.estimate.value,
            "low": first.estimate.low,
            "high": first.estimate.high,
            "n": first.estimate.n,
            "verdict": first.verdict,
            "note": first.note,
            "sentence": None,
        }
    )
    assert first.estimate.value == first.estimate.value  # a number: the columns are not empty
    assert tables["findings"].columns == [
        "question",
        "comparison",
        "value",
        "low",
        "high",
        "n",
        "verdict",
        "note",
        "sentence",
    ]
    assert tables["accuracy"].equals(accuracy_table(data.retention, data.peaks))
    assert set(tables) == set(report.TABLES)  # the rule writes each of TABLES


def channels(spec: dict) -> dict[str, str]:
    """channel → field (and `<channel>.title`, `<channel>.scale`) over a chart spec and its
    layers; facet channels as `facet.<channel>`."""
    found = {}
    inner = spec.get("spec", spec)
    for part in [inner, *inner.get("layer", [])]:
        for channel, encoding in part.get("encoding", {}).items():
            if isinstance(encoding, dict) and "field" in encoding:
                found.setdefault(channel, encoding["field"])
                for key in ("title", "scale"):
                    if key in encoding:
                        found.setdefault(f"{channel}.{key}", encoding[key])
    for channel, encoding in spec.get("facet", {}).items():
        found[f"facet.{channel}"] = encoding["field"]
        found[f"facet.{channel}.title"] = encoding.get("title")
    return found


def test_each_figure_draws_the_table_it_comes_from_on_the_axes_it_names(run_files):
    files, runs = run_files
    data = collect(files["retention"], files["weights"], files["metrics"], runs, METHODS, THRESHOLDS)
    tables = report.tables(data, ["arith"], THRESHOLDS, METHODS)
    figures = report.figures(data, tables, ["arith"], THRESHOLDS)
    spec = {key: channels(chart.to_dict()) for key, chart in figures.items()}

    expected_data = {
        "tradeoff": tradeoff_points(data.retention, ["arith"]),
        "norm": summaries.norm_summary(data.norms),
        "divergence": summaries.kl_summary(data.retention, ["arith"]),
        "curves": summaries.training_curves(data.metrics),
        "sparsity": layer_sparsity(data.per_tensor, THRESHOLDS),
    }
    for key, table in expected_data.items():
        assert figures[key].data.equals(table), key
    assert figures["dose_norm"].data.drop("prior_change_points").equals(tables["checkpoints"])
    assert figures["dose_norm"].data["prior_change_points"].to_list() == pytest.approx(
        [100 * c for c in tables["checkpoints"]["prior_change"]]
    )
    assert (spec["tradeoff"]["x"], spec["tradeoff"]["y"], spec["tradeoff"]["shape"]) == (
        "new_accuracy",
        "prior_accuracy",
        "method",
    )
    assert (spec["tradeoff"]["x.title"], spec["tradeoff"]["y.title"]) == ("new-task accuracy", "prior-task accuracy")
    assert spec["tradeoff"]["x.scale"] == spec["tradeoff"]["y.scale"] == {"zero": False}  # a few points of change
    assert (spec["norm"]["y"], spec["norm"]["y.title"]) == ("fro_norm_low", "‖ΔW‖_F (all parameters)")  # band first
    assert (spec["dose_norm"]["x"], spec["dose_norm"]["y"]) == ("fro_norm", "prior_change_points")
    assert spec["dose_norm"]["x.title"] == "‖ΔW‖_F (all parameters)"
    assert (spec["dose_kl"]["x"], spec["dose_kl"]["x.title"]) == ("kl", "mean per-token KL(base ‖ checkpoint)")
    assert (spec["divergence"]["facet.column"], spec["divergence"]["facet.column.title"]) == (
        "prior_task",
        "prompts of prior task",
    )
    assert (spec["sparsity"]["x"], spec["sparsity"]["y"], spec["sparsity"]["facet.row"]) == ("layer", "sparsity", "tau")
    assert spec["curves"]["facet.column"] == "measure"
    assert set(figures["curves"].data["measure"]) == {
        "ES fitness, mean over members",
        "GRPO reward, mean over rollouts",
        "validation accuracy",
    }
    measured = figures["drift"].data
    assert set(measured["method"]) == {"es"} and measured.height == 2 * 6  # both norms, every iteration
    assert (spec["drift"]["facet.column.title"], spec["drift"]["facet.row.title"]) == ("method", "trained on")


def test_the_drift_figure_says_so_when_no_run_measured_drift():
    none = pl.DataFrame(schema=report.DRIFT_COLUMNS)
    assert charts.drift_chart(none).data["note"].item().startswith("no ES run under the authors' numerics")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)")
def test_the_page_opens_offline_in_a_browser_without_errors_and_every_figure_shows_marks(run_files, tmp_path):
    """As a person reads it: headless Chromium, networking off, from a file:// URL. Nothing is
    fetched but the page itself, nothing is logged as an error, every figure drew marks; the
    screenshot is left in the test's folder."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    files, runs = run_files
    data = collect(files["retention"], files["weights"], files["metrics"], runs, METHODS, THRESHOLDS)
    figures = {key: (tmp_path / f"{key}.svg", tmp_path / f"{key}.png") for key in report.FIGURES}
    render(data, ["arith"], THRESHOLDS, METHODS, RECORD, tmp_path / "report.html", figures, CAPTIONS, "report")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_context(offline=True).new_page()
        errors, fetched = [], []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: fetched.append(request.url))
        page.goto((tmp_path / "report.html").as_uri(), wait_until="load")
        marks = page.eval_on_selector_all("svg", "svgs => svgs.map(svg => svg.querySelectorAll('.role-mark *').length)")
        page.screenshot(path=tmp_path / "screenshot.png", full_page=True)
        browser.close()

    assert errors == []
    assert fetched == [(tmp_path / "report.html").as_uri()]
    assert len(marks) == len(report.FIGURES) and min(marks) > 0
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("seeds", "expected", "wilson"),
    [
        ({"es": [0, 1, 2], "grpo": [0, 1, 2]}, "3 seeds per method", False),
        ({"es": [0, 1, 2], "grpo": [0]}, "1–3 seeds per method", True),
    ],
)
def test_the_page_says_how_many_seeds_each_interval_rests_on(seeds, expected, wilson):
    retention = pl.DataFrame(
        [{"model": "tiny", "method": m, "train_task": "countdown", "seed": s} for m, ss in seeds.items() for s in ss]
    )
    statement = report._intervals_statement(retention)
    assert statement.startswith(expected)
    assert ("Wilson" in statement) is wilson


def test_the_interval_statement_says_what_each_interval_rests_on_in_full():
    def statement(seeds: dict) -> str:
        rows = [
            {"model": "tiny", "method": m, "train_task": "countdown", "seed": s} for m, ss in seeds.items() for s in ss
        ]
        return report._intervals_statement(pl.DataFrame(rows))

    assert statement({"es": [0], "grpo": [0]}) == (
        "One seed per method: there is no between-seed interval. Intervals shown are the 95 % Wilson intervals "
        "over the test items of that one run; verdicts that need an interval over seeds are inconclusive."
    )
    assert statement({"es": [0, 1, 2], "grpo": [0, 1, 2]}) == (
        "3 seeds per method. Values are means over seeds with 95 % Student-t intervals over seeds "
        "(n − 1 degrees of freedom)."
    )
    assert statement({"es": [0, 1, 2], "grpo": [0]}) == (
        "1–3 seeds per method. Values are means over seeds with 95 % Student-t intervals over seeds "
        "(n − 1 degrees of freedom). A method with one seed shows the 95 % Wilson interval over its test "
        "items instead."
    )


def test_seeds_are_counted_per_new_task_as_well_as_per_method():
    retention = pl.DataFrame(
        [{"model": "tiny", "method": "es", "train_task": "countdown", "seed": s} for s in (0, 1, 2)]
        + [{"model": "tiny", "method": "es", "train_task": "gsm8k", "seed": 0}]
    )
    assert report._intervals_statement(retention).startswith("1–3 seeds per method")


def test_seeds_are_counted_per_model_as_well_as_per_method():
    """Another model's seeds of the same method are other runs, not more seeds of these."""
    retention = pl.DataFrame(
        [{"model": "tiny", "method": "es", "train_task": "countdown", "seed": s} for s in (0, 1, 2)]
        + [{"model": "small", "method": "es", "train_task": "countdown", "seed": 0}]
    )
    assert report._intervals_statement(retention).startswith("1–3 seeds per method")


def test_collect_refuses_runs_that_do_not_match_the_metrics_files_one_to_one(run_files):
    files, runs = run_files
    with pytest.raises(ValueError, match="zip"):
        collect(files["retention"], files["weights"], files["metrics"], runs[:-1], METHODS, THRESHOLDS)


def test_a_report_of_grpo_runs_alone_has_an_empty_drift_table_and_draws_it(run_files, tmp_path):
    """Drift is an ES measure: with no ES run its table is empty, with its columns, and the
    precision table and the drift figure are made from it all the same."""
    files, runs = run_files
    grpo_only = {kind: paths[1:] for kind, paths in files.items()}
    data = collect(grpo_only["retention"], grpo_only["weights"], grpo_only["metrics"], runs[1:], METHODS, THRESHOLDS)
    assert data.drift.is_empty() and data.drift.schema == pl.Schema(report.DRIFT_COLUMNS)
    assert precision_table(data.norms, data.per_tensor, data.drift, METHODS, THRESHOLDS)["method"].to_list() == ["grpo"]
    assert "no ES run under the authors' numerics" in str(charts.drift_chart(data.drift).to_dict())


def test_findings_are_listed_under_their_question_in_order_coloured_by_verdict():
    found = pl.DataFrame(
        {
            "question": ["Q2?", "Q1?", "Q2?", "Q3?"],
            "verdict": ["supported", "not supported", "inconclusive at this sample", "supported"],
            "sentence": ["a <b>", "c", "d", "e & f"],
        }
    )
    assert report._findings_html(found) == [
        "<h2>Findings</h2>",
        f"<p>{report.FINDINGS_CAPTION}</p>",
        "<h3>Q2?</h3><ul><li class='supported'>a &lt;b&gt;</li><li class='inconclusive'>d</li></ul>",
        "<h3>Q1?</h3><ul><li class='not'>c</li></ul>",
        "<h3>Q3?</h3><ul><li class='supported'>e &amp; f</li></ul>",
    ]


def test_what_made_the_report_is_set_out_in_full():
    record = {
        **RECORD,
        "git": {"commit": "abc123", "dirty": False},
        "config": {"seeds": [0, 1], "data_seed": 7},
        "versions": {"torch": "2.13.0", "trl": "1.16"},
        "devices": ["cpu (a)", "cuda:0 (b)"],
    }
    versions = pl.DataFrame({"package": ["torch", "trl"], "version": ["2.13.0", "1.16"]})
    assert report._record_html(record) == [
        "<h2>What made this report</h2>",
        "<p>Code: commit <code>abc123</code>; tree dirty: no. Training devices: cpu (a), cuda:0 (b); this page "
        "rendered on cpu (test).</p>",
        "<h3>Packages</h3>",
        table_html(versions),
        "<h3>Data (sha256 of each split, from its manifest)</h3>",
        table_html(RECORD["data"]),
        "<h3>Wall time per job (Snakemake benchmark files)</h3>",
        table_html(RECORD["times"]),
        "<h3>Resolved config</h3>",
        "<pre>data_seed: 7\nseeds:\n- 0\n- 1\n</pre>",
    ]
    assert "tree dirty: unknown" in report._record_html({**record, "git": {"commit": "none", "dirty": None}})[1]


def test_shares_of_weights_read_in_percent_and_large_round_numbers_in_full_up_to_a_bound():
    head = table_html(
        pl.DataFrame(
            {"sparsity@1e-06": [0.5], "master_sparsity@1e-06": [0.5], "erased@1e-06": [0.5], "fro_norm": [0.5]}
        )
    )
    assert (
        "<th>sparsity@1e-06 (%)</th><th>master_sparsity@1e-06 (%)</th><th>erased@1e-06 (%)</th><th>fro_norm</th>"
        in head
    )
    assert "<td>50.0</td><td>50.0</td><td>50.0</td><td>0.5</td>" in head
    assert report._number(999_999_999_999_999.0, False) == "999,999,999,999,999"
    assert report._number(1e15, False) == "1e+15"


def test_a_column_with_underscores_keeps_its_interval_columns_beside_it():
    frame = pl.DataFrame({"final_kl": [0.25], "final_kl_low": [0.125], "final_kl_high": [0.375]})
    assert table_html(frame) == (
        "<div class='table'><table><thead><tr><th>final_kl [95 % interval]</th></tr></thead><tbody>"
        "<tr><td>0.25 [0.125, 0.375]</td></tr></tbody></table></div>"
    )


def test_the_findings_table_holds_each_findings_estimate_and_verdict(run_files, monkeypatch):
    from esforget.core.statistics import Estimate

    files, runs = run_files
    data = collect(files["retention"], files["weights"], files["metrics"], runs, METHODS, THRESHOLDS)
    found = [
        findings.Finding("Q?", "a comparison", Estimate(-1.5, -2.5, -0.5, 6), findings.SUPPORTED, note="a note"),
        findings.Finding("Q?", "another", None, findings.INCONCLUSIVE),
    ]
    monkeypatch.setattr(findings, "all_findings", lambda checkpoints, plain_es, plain_grpo: found)
    monkeypatch.setattr(predictors, "predictor_findings", lambda table, fits: [])
    table = report.tables(data, ["arith"], THRESHOLDS, METHODS)["findings"]
    assert table.rows() == [
        ("Q?", "a comparison", -1.5, -2.5, -0.5, 6, "supported", "a note", found[0].sentence()),
        ("Q?", "another", None, None, None, None, "inconclusive at this sample", "", found[1].sentence()),
    ]
    assert [table.schema[c] for c in ("value", "low", "high", "n")] == [pl.Float64, pl.Float64, pl.Float64, pl.Int64]
    # no estimate at all
    monkeypatch.setattr(findings, "all_findings", lambda checkpoints, plain_es, plain_grpo: found[1:])
    table = report.tables(data, ["arith"], THRESHOLDS, METHODS)["findings"]
    assert [table.schema[c] for c in ("value", "low", "high", "n")] == [pl.Float64, pl.Float64, pl.Float64, pl.Int64]
