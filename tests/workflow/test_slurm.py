"""The cluster profile as shipped, on a real single-node SLURM the tests start themselves
(tests/workflow/slurm_cluster.py): the e2e DAG runs job by job through `--profile profiles/slurm`, every
job is seen from SLURM's side, and a failing job ends the run promptly with nothing left queued."""

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml

from esforget.config.load import load
from esforget.core import layout
from esforget.train import resume
from tests.workflow.e2e import copy_e2e_workflow
from tests.workflow.slurm_cluster import Cluster, missing_binaries

pytestmark = pytest.mark.slow  # runs the e2e DAG: `pytest -m "not slow"` for a quick loop
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
RUN_LIMIT_S = 1500  # a hang guard: the e2e DAG took 3 min 36 s under this profile on 2 cores on
# 2026-11-25, and over 10 minutes on 2026-11-29 (a machine 2× slower, with other work beside it)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip(f"SLURM is not installed (missing {missing}): apt-get install slurmctld slurmd slurm-client munge")
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    reason = cluster.can_install()
    if reason:
        pytest.skip(f"cannot start a test SLURM here: {reason}")
    cluster.start()
    yield cluster
    cluster.stop()
    assert not cluster.alive(), f"daemons left running: {cluster.alive()}"


def snakemake(cluster: Cluster, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--profile", "profiles/slurm", "--seconds-between-status-checks", "2", *args],
        cwd=root,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
    )


# A job with wildcards logs to rule_R/W/N.log, one without (the report) to rule_R/N.log.
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/(?:(\S*)/)?\d+\.log\)")


def submitted(output: str) -> dict[str, tuple[str, str]]:
    """SLURM job id → (rule, wildcards), from Snakemake's "submitted with SLURM jobid N (log:
    …/rule_R/W/N.log)" lines, W being the job's wildcard values joined by "_" ("" for none)."""
    return {job: (rule, wildcards) for job, rule, wildcards in SUBMITTED.findall(output)}


def expected_jobs(config_path: Path) -> Counter:
    """The jobs a config's whole DAG runs, by rule, counted from the config itself: one data job
    per task, one base and its evaluation per model, and per run (model × method × new task ×
    seed) its training, evaluation and weight analysis; one report."""
    config = yaml.safe_load(config_path.read_text())
    runs = config["runs"]
    count = len(runs["models"]) * len(runs["methods"]) * len(runs["tasks"]) * len(config["seeds"])
    per_model = len(runs["models"])
    return Counter(
        prepare_data=len(config["tasks"]),
        prepare_base_model=per_model,
        evaluate_base=per_model,
        train=count,
        evaluate_retention=count,
        analyze_weights=count,
        render_report=1,
    )


def declared_threads(rule: str, wildcards: str, config: dict) -> int:
    """The threads the config gives a job: by its rule, and a training job's by its method's
    algorithm (wildcards `<model id>_<method>_<task id>_<seed>`)."""
    threads = config["threads"]
    if rule == "train":
        method = re.fullmatch(r"[^_]+-[0-9a-f]{8}_(.+)_[^_]+-[0-9a-f]{8}_\d+", wildcards).group(1)
        return threads[f"train_{config['methods'][method]['algorithm']}"]
    by_rule = {"prepare_base_model": "pretrain", "evaluate_base": "evaluate", "evaluate_retention": "evaluate"}
    return threads[by_rule[rule]] if rule in by_rule else 1


def test_the_e2e_dag_runs_as_slurm_jobs_with_the_resources_its_rules_declare(cluster, tmp_path):
    root = copy_e2e_workflow(tmp_path)
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    done = snakemake(cluster, root)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (root / "results/report/report.html").exists()

    jobs = submitted(done.stdout + done.stderr)
    # every job but the local target `all` went to SLURM
    assert Counter(rule for rule, _ in jobs.values()) == expected_jobs(root / "config" / "config.yaml")
    finished = {job["JobId"]: job for job in cluster.completed_jobs()}
    assert {job_id: finished[job_id]["JobState"] for job_id in jobs} == dict.fromkeys(jobs, "COMPLETED")
    # what the rules declare reached the scheduler: threads as CPUs, the model's memory, no GPU
    for job_id, (rule, wildcards) in jobs.items():
        tres = finished[job_id]["Tres"]
        cpus = declared_threads(rule, wildcards, config)
        assert f"cpu={cpus}," in tres and "mem=4000M" in tres and "gres" not in tres, (rule, wildcards, tres)
    assert {finished[j]["Tres"].split(",")[0] for j, (rule, _) in jobs.items() if rule == "train"} == {
        "cpu=1",
        "cpu=2",
    }  # ES's 2 threads and GRPO's 1, from one rule
    # ES with 2 threads ran its 2 processes inside its job; SLURM's own job logs are kept
    es_logs = sorted((root / ".snakemake/slurm_logs/rule_train").glob("micro-*_es_countdown-*/*.log"))
    assert len(es_logs) == 1
    assert all("Finished job" in log.read_text() for log in (root / ".snakemake/slurm_logs").rglob("*.log"))
    train_log = next((root / "logs").glob("micro-*/es/countdown-*/seed0/train.log")).read_text()
    assert "training in 2 processes under torch.distributed.run" in train_log, train_log[-2000:]


def test_a_failing_job_fails_the_run_promptly_and_leaves_nothing_queued(cluster, tmp_path):
    """Promptly, without a clock: Snakemake names the failure from the job's FAILED state, which
    squeue shows only until MinJobAge (300 s) after the job ends; a plugin that lost track of the
    job would instead run into the hang guard (RUN_LIMIT_S) and fail the test there."""
    root = copy_e2e_workflow(tmp_path)
    # a base that must reach 100 % on the prior task, with no extra rounds: pretraining fails
    # inside its SLURM job, after the config passed every check
    (root / "strict.yaml").write_text("models: {micro: {pretrain: {min_prior_accuracy: 1.0}}}\n")
    done = snakemake(cluster, root, "--configfile", "config/config.yaml", "strict.yaml")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    jobs = submitted(output)
    failed = [job for job in cluster.completed_jobs() if job["JobState"] == "FAILED" and job["JobId"] in jobs]
    assert [jobs[job["JobId"]][0] for job in failed] == ["prepare_base_model"]
    assert f"SLURM-job '{failed[0]['JobId']}' failed, SLURM status is: 'FAILED'" in output
    assert "Exiting because a job execution failed" in output
    assert cluster.run("squeue", "--noheader").stdout.strip() == ""


def test_a_requeued_training_job_resumes_from_its_last_checkpoint(cluster, tmp_path):
    """Preemption as SLURM does it: `scontrol requeue` kills the running ES job and queues it
    again; the job starts over, finds the run's partial/ state and continues from there."""
    root = copy_e2e_workflow(tmp_path)
    (root / "long.yaml").write_text(  # one ES run, long enough to be preempted midway
        "runs: {methods: [es]}\n"
        "methods: {es: {iterations: 120, population_size: 16, checkpoint_every: 10, validate_every: 120}}\n"
    )
    target = layout.run_dir(load(["config/config.yaml", "long.yaml"], root), "micro", "es", "countdown", 0)
    run_dir = root / target
    log = (tmp_path / "snakemake.log").open("w")
    run = subprocess.Popen(
        [*SNAKEMAKE, "--profile", "profiles/slurm", "--configfile", "config/config.yaml", "long.yaml"]
        + ["--seconds-between-status-checks", "2", f"{target}/metrics.parquet"],
        cwd=root,
        env=cluster.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + RUN_LIMIT_S
        while not list(run_dir.glob(f"partial/state/step*/{resume.STATE_FILE}")):
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before its first state"
            time.sleep(0.5)
        running = cluster.run("squeue", "--noheader", "--states=RUNNING", "--format=%i").stdout.split()
        assert len(running) == 1, running  # the ES job, alone at this point
        cluster.run("scontrol", "requeue", running[0])
        # SLURM holds a requeued job for two minutes before it may start again; once it is
        # back in the queue, release it
        while cluster.run("squeue", "--noheader", f"--jobs={running[0]}", "--format=%T").stdout.strip() != "PENDING":
            assert time.monotonic() < deadline, "the requeued job did not return to the queue"
            time.sleep(0.2)
        cluster.run("scontrol", "update", f"JobId={running[0]}", "StartTime=now")
        assert run.wait(timeout=RUN_LIMIT_S) == 0, (tmp_path / "snakemake.log").read_text()[-4000:]
    finally:
        if run.poll() is None:
            run.kill()
    assert "Restarts=1" in cluster.run("scontrol", "show", "job", running[0]).stdout
    train_log = next(root.glob("logs/micro-*/es/countdown-*/seed0/train.log")).read_text()
    assert "resuming from step" in train_log  # the job's second start (its log is new)
    assert pl.read_parquet(run_dir / "metrics.parquet")["step"].to_list() == list(range(1, 121))
