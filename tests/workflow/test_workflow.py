"""The whole DAG on the smallest config, run the way users run it, checked on its tables."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.shared import REPO

pytestmark = pytest.mark.slow  # runs the e2e DAG: `pytest -m "not slow"` for a quick loop
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture(scope="module")
def workdir(e2e_run) -> Path:
    return e2e_run


def one(root: Path, pattern: str) -> Path:
    """The one path matching `pattern`: outputs live under ids hashing their definitions
    (`countdown-1a2b3c4d`), one per task and model of a config."""
    found = sorted(root.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def read(root: Path, pattern: str) -> pl.DataFrame:
    return pl.read_parquet(one(root, pattern))


def test_data_has_the_configured_splits_and_a_manifest(workdir):
    import json

    manifest = json.loads(one(workdir, "data/countdown-*/manifest.json").read_text())
    assert {s: v["rows"] for s, v in manifest["splits"].items()} == {"train": 64, "validation": 16, "test": 32}
    assert manifest["seed"] == 7 and len(manifest["splits"]["test"]["sha256"]) == 64
    test = read(workdir, "data/countdown-*/test.parquet")
    train = read(workdir, "data/countdown-*/train.parquet")
    assert set(test["prompt"]).isdisjoint(train["prompt"])


def test_retention_table_scores_every_checkpoint_on_every_task(workdir):
    for method in ("es", "grpo"):
        table = read(workdir, f"results/micro-*/{method}/countdown-*/seed0/retention.parquet")
        # the generative probe on every task; the log-likelihood probes on the multiple-choice one
        probes = {"arith": ["generative", "loglikelihood", "loglikelihood_norm"], "countdown": ["generative"]}
        assert table.select("step", "eval_task", "probe").rows() == [
            (step, task, probe) for step in (0, 2, 4) for task in ("arith", "countdown") for probe in probes[task]
        ]
        assert table["n"].to_list() == [32] * 12
        assert (table["accuracy"] == table["correct"] / table["n"]).all()
        assert ((table["ci_low"] <= table["accuracy"]) & (table["accuracy"] <= table["ci_high"])).all()
        assert set(table["method"]) == {method} and set(table["train_task"]) == {"countdown"}
        # divergence from the base: prior task only, zero at the base, positive once trained
        kl = table.filter(pl.col("probe") == "generative").select("step", "eval_task", "kl_from_base").rows()
        assert [r for r in kl if r[1] == "countdown"] == [(s, "countdown", None) for s in (0, 2, 4)]
        assert [r[2] for r in kl if r[1] == "arith"][0] == 0.0 and all(
            r[2] > 0 for r in kl if r[1] == "arith" and r[0] > 0
        )
        # RL's Razor's KL on the base's sampled replies: every task, zero at the base, positive once trained
        sampled = table.filter(pl.col("probe") == "generative").select("step", "kl_sampled").rows()
        assert all((kl == 0.0) if step == 0 else (kl > 0) for step, kl in sampled)
    # Step 0 is the base for both methods: the same numbers.
    es0 = read(workdir, "results/micro-*/es/countdown-*/seed0/retention.parquet").filter(pl.col("step") == 0)
    grpo0 = read(workdir, "results/micro-*/grpo/countdown-*/seed0/retention.parquet").filter(pl.col("step") == 0)
    assert es0["accuracy"].to_list() == grpo0["accuracy"].to_list()


def test_both_methods_move_the_weights_and_the_analysis_sees_it(workdir):
    norms = read(workdir, "results/report/weight_norms.parquet")
    for method in ("es", "grpo"):
        run = norms.filter(pl.col("method") == method).sort("step")
        assert run["step"].to_list() == [0, 2, 4]
        assert run["fro_norm"][0] == 0 and run["fro_norm"][2] > 0
    per_tensor = read(workdir, "results/micro-*/grpo/countdown-*/seed0/weight_diff.parquet")
    assert {"Q", "K", "V", "O", "MLP", "LayerNorm", "embedding"} <= set(per_tensor["bucket"])
    assert per_tensor["sparsity@1e-06"].is_between(0, 1).all()
    matrices = per_tensor.filter(pl.col("bucket").is_in(["Q", "K", "V", "O", "MLP"]))
    assert matrices["rank_percent"].is_between(0, 100).all()  # analysis.rank is on in this config
    assert per_tensor.filter(pl.col("bucket") == "LayerNorm")["rank_percent"].is_null().all()


def test_the_precision_table_shows_storage_rounding_and_restore_drift(workdir):
    precision = {r["method"]: r for r in read(workdir, "results/report/precision.parquet").iter_rows(named=True)}
    # GRPO stored in bf16 with its fp32 master: both read, and what rounding erased is counted
    grpo = precision["grpo"]
    assert grpo["stored_dtype"] == "bfloat16" and grpo["master_fro_norm"] > 0
    assert 0 < grpo["erased@1e-06"] <= 1 - grpo["master_sparsity@1e-06"]
    assert grpo["sparsity@1e-06"] > grpo["master_sparsity@1e-06"]
    # ES in fp16 under the authors' numerics: restores drifted; with an exact master they cannot
    authors, exact = precision["es_fp16_authors"], precision["es"]
    assert authors["stored_dtype"] == "float16" and authors["drift_share"] > 0
    assert exact["drift_share"] == 0 and exact["master_fro_norm"] is None
    assert one(workdir, "results/micro-*/grpo/countdown-*/seed0/checkpoints/step000004/master/model.safetensors")


def test_metrics_tables_have_one_row_per_step(workdir):
    es = read(workdir, "results/micro-*/es/countdown-*/seed0/metrics.parquet")
    assert es["step"].to_list() == [1, 2, 3, 4]
    assert {"fitness/mean", "fitness/std", "update/total_norm", "val/accuracy"} <= set(es.columns)
    grpo = read(workdir, "results/micro-*/grpo/countdown-*/seed0/metrics.parquet")
    assert grpo["step"].to_list() == [1, 2, 3, 4]
    assert grpo["reward/mean"].is_not_null().all() and grpo["loss"].is_not_null().all()


def test_report_has_findings_figures_tables_and_what_made_them(workdir):
    from esforget.report.page import FIGURES

    page = (workdir / "results/report/report.html").read_text()
    assert page.count("<svg") == len(FIGURES)
    for key in FIGURES:
        assert (workdir / f"results/report/figures/{key}.svg").stat().st_size > 0
        assert (workdir / f"results/report/figures/{key}.png").read_bytes()[:4] == b"\x89PNG"
    findings = read(workdir, "results/report/findings.parquet")
    assert set(findings["question"]) >= {
        "Does ES forget more than GRPO at matched new-task accuracy?",
        "Does forgetting follow the update norm within each method?",
    }
    assert "What made this report" in page and "Wall time per job" in page
    accuracy = read(workdir, "results/report/accuracy.parquet")
    assert sorted(zip(accuracy["method"], accuracy["eval_task"], accuracy["probe"], strict=True)) == [
        (method, *task_probe)
        for method in ("es", "es_fp16_authors", "grpo")
        for task_probe in (
            ("arith", "generative"),
            ("arith", "loglikelihood"),
            ("arith", "loglikelihood_norm"),
            ("countdown", "generative"),
        )
    ]
    assert set(accuracy["peak_step"]) <= {2.0, 4.0}  # a saved checkpoint picked by validation accuracy


def test_every_stage_logged_to_its_file(workdir):
    for log in (
        "data/countdown-*.log",
        "micro-*/base/prepare_base_model.log",
        "micro-*/es/countdown-*/seed0/train.log",
        "micro-*/grpo/countdown-*/seed0/evaluate.log",
        "micro-*/es/countdown-*/seed0/analyze_weights.log",
    ):
        assert one(workdir / "logs", log)
    assert "iteration 4" in one(workdir, "logs/micro-*/es/countdown-*/seed0/train.log").read_text()


def planned_jobs(workdir, env=None, change: str | None = None) -> dict[str, int]:
    """The job counts of a dry run (rule → count), {} when there is nothing to do; `change` is
    YAML layered over the profile (`--configfile config/config.yaml change.yaml`)."""
    layered = []
    if change is not None:
        (workdir / "change.yaml").write_text(change)
        layered = ["--configfile", "config/config.yaml", "change.yaml"]
    done = subprocess.run(
        [*SNAKEMAKE, "--cores", "1", "-n", "--quiet", "rules", *layered],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = (line.split() for line in done.stdout.splitlines())
    return {
        row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit() and row[0] not in ("all", "total")
    }


def test_a_line_of_evaluation_code_reruns_evaluation_and_what_follows_only(workdir, tmp_path):
    """The same package elsewhere (fresh copy, new file times) changes nothing; one more line
    in the evaluation module reruns the evaluations and the report, nothing before them."""
    import esforget

    package = Path(shutil.copytree(Path(esforget.__file__).parent, tmp_path / "src" / "esforget"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    assert planned_jobs(workdir, env) == {}
    with open(package / "evaluate" / "retention.py", "a") as handle:
        handle.write("\n# one more line\n")
    assert planned_jobs(workdir, env) == {"evaluate_base": 1, "evaluate_retention": 3, "render_report": 1}


def test_a_second_run_has_nothing_to_do(workdir):
    done = subprocess.run([*SNAKEMAKE, "--cores", "1", "-n"], cwd=workdir, capture_output=True, text=True)
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr


# What a change reruns, exactly (3 runs: es, es_fp16_authors, grpo on countdown, seed 0).
EVERYTHING = {
    "prepare_data": 2,
    "prepare_base_model": 1,
    "evaluate_base": 1,
    "train": 3,
    "evaluate_retention": 3,
    "analyze_weights": 3,
    "render_report": 1,
}
NEW_SEED = {"train": 3, "evaluate_retention": 3, "analyze_weights": 3, "render_report": 1}
ONE_ES_RUN = {"train": 1, "evaluate_retention": 1, "analyze_weights": 1, "render_report": 1}
EVALUATION = {"evaluate_base": 1, "evaluate_retention": 3, "render_report": 1}


@pytest.mark.parametrize(
    "change, expected",
    [
        ("seeds: [0, 1]", NEW_SEED),  # seed 1 of every method is new; seed 0, the data and the base are done
        ("methods: {es: {sigma: 0.2}}", ONE_ES_RUN),  # the other ES method and GRPO untouched
        ("evaluation: {split: validation}", EVALUATION),  # data, base and training untouched
        ("data_seed: 8", EVERYTHING),  # new data under new ids: everything after it anew
    ],
    ids=["seeds", "es-sigma", "evaluation-split", "data-seed"],
)
def test_a_change_layered_over_the_profile_reruns_exactly_what_it_affects(workdir, change, expected):
    assert planned_jobs(workdir, change=change) == expected


def test_lint_is_clean():
    done = subprocess.run([*SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_data_its_manifest_disowns_stops_the_stage_that_reads_it(workdir, tmp_path):
    """Data in the config's folder that another seed made (restored by hand, copied from
    elsewhere) while Snakemake cannot see it (provenance triggers off): the evaluation refuses
    it instead of scoring on it."""
    copy = Path(shutil.copytree(workdir, tmp_path / "copy", symlinks=True))
    manifest = one(copy, "data/countdown-*/manifest.json")
    manifest.write_text(manifest.read_text().replace('"seed": 7', '"seed": 8'))
    done = subprocess.run(
        [*SNAKEMAKE, "--cores", "1", "--rerun-triggers", "mtime", "--forcerun", "evaluate_base"],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    log = one(copy, "logs/micro-*/base/evaluate.log").read_text()
    assert re.search(r"data/countdown-\w+/test.parquet was prepared with data_seed=8, the config has 7", log)
