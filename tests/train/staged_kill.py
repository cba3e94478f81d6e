"""A training job killed at a chosen point, without racing the clock: the job runs in a child
process whose resumable-state protocol (`esforget.train.resume.complete`) SIGKILLs the process
the moment its first state is complete, as an OOM killer or a preempting scheduler would at any
moment between two checkpoints."""

import signal
import subprocess
import sys
from pathlib import Path

from esforget.core.files import write_json

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
