"""Whole ES runs: a killed run resumes to the weights of an uninterrupted one, and a run split
over two processes ends with the weights of a run in one."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from esforget.core.checkpoints import list_checkpoints
from esforget.core.files import read_json, write_json, write_parquet
from esforget.core.models import load_model
from esforget.data.sources import build_splits
from esforget.train import es, launch, resume
from esforget.train.distributed import Group
from tests.shared import MICRO_COUNTDOWN
from tests.train.specs import launch_spec
from tests.train.staged_kill import killed_and_resumed, train_killed_after_first_state

ITERATIONS = 12


@pytest.fixture()
def job(micro_model_dir, tmp_path):
    """An ES job on a random micro model: large σ so that members' greedy replies differ."""
    data = build_splits(MICRO_COUNTDOWN, {"train": 32, "validation": 8, "test": 8}, seed=0)
    for split in ("train", "validation"):
        write_parquet(data[split], tmp_path / f"{split}.parquet")
    method = {
        "algorithm": "es",
        "iterations": ITERATIONS,
        "population_size": 6,
        "sigma": 0.5,
        "alpha": 0.05,
        "prompts_per_iteration": 8,
        "checkpoint_every": 3,
        "validate_every": 6,
    }
    return launch_spec(method, micro_model_dir, tmp_path, "countdown", max_new_tokens=8, seed=7)


def finished(out_dir):
    """(metrics without wall-clock columns, {step: weights} of every checkpoint) of a completed run."""
    metrics = pl.read_parquet(out_dir / "metrics.parquet").drop("perf/seconds")
    checkpoints = {
        step: [p.detach() for p in load_model(path, "float32").parameters()]
        for step, path in list_checkpoints(out_dir / "checkpoints")
    }
    return metrics, checkpoints


def assert_same_run(a, b, base_dir):
    """Same metrics, same checkpoints (every one, not only the last), bit for bit."""
    (metrics_a, checkpoints_a), (metrics_b, checkpoints_b) = a, b
    assert metrics_a.equals(metrics_b)
    assert sorted(checkpoints_a) == sorted(checkpoints_b) == list(range(3, ITERATIONS + 1, 3))
    for step, weights_a in checkpoints_a.items():
        assert all(torch.equal(p, q) for p, q in zip(weights_a, checkpoints_b[step], strict=True)), step
    weights_a = checkpoints_a[ITERATIONS]
    # Not vacuous: members scored differently and the weights moved away from the base.
    assert metrics_a["fitness/std"].max() > 0
    base = [p.detach() for p in load_model(base_dir).parameters()]
    assert any(not torch.equal(p, q) for p, q in zip(weights_a, base, strict=True))


@pytest.mark.parametrize("numerics, dtype", [("master", "float32"), ("authors", "float16")])
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(job, tmp_path, numerics, dtype, caplog):
    """Under the authors' numerics the state also carries the restores' summed drift, which the
    metrics compare (drift/total_norm). The rerun continues from the state (iteration 3), not
    from the start."""
    job = {**job, "method": {**job["method"], "numerics": numerics, "dtype": dtype}}
    whole, out = killed_and_resumed(job, tmp_path, caplog, step=3)
    assert_same_run(finished(whole), finished(out), job["base_dir"])
    assert not (out / "partial").exists()


def test_a_checkpoint_written_after_the_last_state_is_remade_on_resume(job, tmp_path, monkeypatch):
    """Killed between saving the checkpoint of iteration 6 and its resumable state: the rerun
    resumes from iteration 3, drops the checkpoint it cannot vouch for and writes it again."""
    launch.train({**job, "out_dir": str(tmp_path / "whole")})
    out = tmp_path / "killed"
    save_state = es.save_state

    def killed_at_iteration_6(work, t, *args):
        if t == 6:
            raise KeyboardInterrupt
        save_state(work, t, *args)

    monkeypatch.setattr(es, "save_state", killed_at_iteration_6)
    with pytest.raises(KeyboardInterrupt):
        launch.train({**job, "out_dir": str(out)})
    work = out / "partial"
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["step000003", "step000006"]
    monkeypatch.setattr(es, "save_state", save_state)
    fingerprint = read_json(work / "state" / "step000003" / resume.STATE_FILE)["config"]
    weights = es.Weights(load_model(job["base_dir"]), "independent")
    done, rows = es.load_state(work, weights, fingerprint)
    assert (done, [row["step"] for row in rows]) == (3, [1, 2, 3])
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["step000003"]
    stored = load_model(work / "checkpoints" / "step000003").state_dict()
    assert all(torch.equal(stored[name], theta) for name, theta in weights.state_dict().items())

    launch.train({**job, "out_dir": str(out)})

    assert_same_run(finished(tmp_path / "whole"), finished(out), job["base_dir"])


def test_a_state_left_by_another_config_is_not_resumed(job, tmp_path):
    launch.train({**job, "out_dir": str(tmp_path / "whole")})
    out = tmp_path / "changed"
    train_killed_after_first_state({**job, "method": {**job["method"], "sigma": 0.4}}, out)

    launch.train({**job, "out_dir": str(out)})  # σ changed in the config before the rerun

    assert_same_run(finished(tmp_path / "whole"), finished(out), job["base_dir"])


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
@pytest.mark.parametrize("members_per_forward, mirrored", [(1, False), (2, False), (2, True)])
def test_two_processes_give_the_weights_of_one(job, tmp_path, members_per_forward, mirrored):
    """Each process scores its 3 of the 6 members, K at a time (with K = 2: a group of 2, then 1);
    mirrored, the 3 pairs are dealt whole: 4 members to one process, 2 to the other."""
    method = {**job["method"], "members_per_forward": members_per_forward, "mirrored": mirrored}
    job = {**job, "method": method}
    launch.run({**job, "out_dir": str(tmp_path / "one")}, processes=1)
    launch.run({**job, "out_dir": str(tmp_path / "two")}, processes=2)
    assert_same_run(finished(tmp_path / "one"), finished(tmp_path / "two"), job["base_dir"])


@pytest.mark.parametrize("count, world, block", [(40, 2, 2), (6, 2, 2), (7, 3, 1), (6, 4, 2), (5, 2, 2)])
def test_ranks_share_out_every_member_once_and_keep_a_pair_on_one_rank(count, world, block):
    dealt = [Group(rank=rank, world=world, device="cpu").mine(count, block) for rank in range(world)]
    assert sorted(i for mine in dealt for i in mine) == list(range(count))
    for mine in dealt:
        assert all(i - i % block in mine for i in mine)  # with the first member of its block
    assert max(map(len, dealt)) - min(map(len, dealt)) <= block


def processes_running(needle: str) -> list[int]:
    """PIDs of live processes whose command line contains `needle` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State"))
            except (OSError, StopIteration):
                continue
            if needle in cmdline and "zombie" not in state:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(
    not Path("/proc").is_dir() or not torch.distributed.is_gloo_available(), reason="needs Linux and gloo"
)
def test_a_killed_job_leaves_no_worker_behind_and_refuses_a_second_writer_meanwhile(job, tmp_path):
    """SIGKILL to the job's process group, as an OOM killer or node agent sends it: torchrun's
    workers run in sessions of their own, yet none may outlive the job. While it runs, a second
    process training the same run is refused, naming the holder. The job is far too long to end
    before the kill: no race with the clock."""
    out = tmp_path / "run"
    spec = tmp_path / "job.json"
    endless = {**job, "method": {**job["method"], "iterations": 10**6}}
    write_json({**endless, "out_dir": str(out)}, spec)
    code = f"import json; from esforget.train import launch; launch.run(json.load(open({str(spec)!r})), processes=2)"
    child = subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    workers_spec = str(out / "launch.json")
    deadline = time.monotonic() + 120
    while (
        len(
            workers := [
                p for p in processes_running(workers_spec) if p not in processes_running("torch.distributed.run")
            ]
        )
        < 2
    ):
        assert time.monotonic() < deadline and child.poll() is None, "the workers never started"
        time.sleep(0.05)

    with pytest.raises(
        RuntimeError, match=rf"train.lock is held by pid {child.pid} on .*: this run is being trained already"
    ):
        launch.run({**job, "out_dir": str(out)}, processes=1)

    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 20
    while processes_running(workers_spec) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_running(workers_spec) == [], f"workers {workers} outlived their job"
    with launch.run_lock(out):  # the lock died with its holder: a rerun may train
        assert (out / "train.lock").read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"


def test_workers_get_the_allocator_settings_unless_the_user_set_their_own(monkeypatch):
    from esforget.train import launch

    for name in ("THP_MEM_ALLOC_ENABLE", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    env = launch.worker_environment()
    assert env["THP_MEM_ALLOC_ENABLE"] == "1"
    assert int(env["MALLOC_MMAP_THRESHOLD_"]) == 32 * 2**20  # glibc's largest dynamic threshold
    assert int(env["MALLOC_TRIM_THRESHOLD_"]) == 2**30
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert launch.worker_environment()["THP_MEM_ALLOC_ENABLE"] == "0"
    assert launch.worker_environment()["MALLOC_TRIM_THRESHOLD_"] == "0"
    assert launch.worker_environment()[launch.JOB_PID] == str(os.getpid())
