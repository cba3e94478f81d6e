"""A training job killed at a chosen point, without racing the clock: the job runs in a child
process whose resumable-state protocol (`esforget.train.resume.complete`) SIGKILLs the process
the moment its first state is complete, as an OOM killer or a preempting scheduler would at any
moment between two checkpoints."""

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from esforget.core.files import write_json
from esforget.train import launch

CHILD = """
import json, os, signal, sys
from esforget.train import launch, resume

complete = resume.complete


def complete_then_die(*args, **kwargs):
    complete(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)


resume.complete = complete_then_die
launch.train(json.load(open(sys.argv[1])))
"""


def train_killed_after_first_state(job: dict, out: Path) -> None:
    """Train `job` into `out` in a child process SIGKILLed right after its first resumable state."""
    spec = out.parent / f"{out.name}.json"
    write_json({**job, "out_dir": str(out)}, spec)
    done = subprocess.run([sys.executable, "-c", CHILD, str(spec)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert not (out / "metrics.parquet").exists()


def killed_and_resumed(job: dict, root: Path, caplog: pytest.LogCaptureFixture, step: int) -> tuple[Path, Path]:
    """`job` trained uninterrupted into `root/whole`, and into `root/killed` killed after its
    first state and rerun as Snakemake reruns it; the rerun must say it resumed from `step`.
    Returns the two runs' folders, to be compared."""
    whole, killed = root / "whole", root / "killed"
    launch.train({**job, "out_dir": str(whole)})
    train_killed_after_first_state(job, killed)
    with caplog.at_level(logging.INFO, logger="esforget.train.resume"):
        launch.train({**job, "out_dir": str(killed)})
    assert f"resuming from step {step}" in caplog.text
    return whole, killed
