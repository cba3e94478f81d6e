"""Start a training job in this process, or as a group of processes.

ES spreads its population over processes (`esforget.train.distributed`); GRPO spreads each
mini-batch over GPUs (data parallel, through accelerate). The rule calls `run` with the number
of processes it was given; with more than one, the job's arguments go to a JSON file and a
launcher starts this module once per process: for ES
`python -m torch.distributed.run --nproc-per-node P -m esforget.train.launch JOB`, for GRPO
`accelerate launch --config_file workflow/accelerate/multi_gpu.yaml --num_processes P ...`.

Nothing of a job may outlive it. The launchers start their workers in sessions of their own,
so a kill of the job's process group (an OOM killer, a node agent, Ctrl-C's SIGKILL
follow-up) would leave them running, writing into the run's work folder. So the launcher is
started with a parent-death signal (Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel
kills it when the job process dies), every worker asks for the same about its launcher and
exits at once if the job is already gone; and the job holds `<run>/train.lock` (`flock`, which
the kernel releases however the holder dies), so a second process training the same run
fails at once, naming the holder, instead of writing beside it.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from esforget.core.files import read_json, write_json
from esforget.train import methods
from esforget.train.job import TrainingJob

log = logging.getLogger(__name__)


def train(job: dict) -> None:
    """Run one job described by plain values (paths, not frames), as `run` writes it: the
    method's name and keys (`method_name`, `method`) and a `TrainingJob` spec."""
    methods.train(job["method_name"], job["method"], TrainingJob.from_spec(job))


ACCELERATE_CONFIG = Path(__file__).resolve().parents[2] / "workflow" / "accelerate" / "multi_gpu.yaml"


def run(job: dict, processes: int) -> None:
    """Train in this process, or in `processes` processes: ES under torchrun (members split
    between them), GRPO under `accelerate launch` (data parallel, GPUs only). Holds the run's
    lock throughout."""
    with run_lock(Path(job["out_dir"])):
        if processes == 1:
            train(job)
            return
        spec = Path(job["out_dir"]) / "launch.json"
        write_json({**job, "threads": 1}, spec)
        if job["method"]["algorithm"] == "es":
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={processes}",
                "-m",
                "esforget.train.launch",
                str(spec),
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(ACCELERATE_CONFIG),
                f"--num_processes={processes}",
                "-m",
                "esforget.train.launch",
                str(spec),
            ]
        log.info("training in %d processes under %s", processes, command[2])
        # The launcher runs under a guard that arms its parent-death signal and then execs it
        # (the signal survives exec); its children write where this job's log goes.
        guarded = [sys.executable, "-m", "esforget.train.launch", GUARD, str(os.getpid()), "--", *command]
        try:
            subprocess.run(guarded, check=True, stdout=sys.stdout, stderr=sys.stderr, env=worker_environment())
        finally:
            spec.unlink(missing_ok=True)


JOB_PID = "ESFORGET_JOB_PID"
"""Environment variable naming the job process to the workers of a multi-process run."""
WORKER_DEFAULTS = {
    "THP_MEM_ALLOC_ENABLE": "1",
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(2**30),
}
"""Environment the workers of a multi-process run get where the user has not set it: how the
process allocates host memory, not what it computes (replies and weights unchanged). An ES
iteration on CPU allocates and frees tens of MB of activations and KV cache per decode step.
PyTorch backs its large CPU tensors with transparent huge pages (`THP_MEM_ALLOC_ENABLE`:
fewer page faults and TLB misses); glibc serves blocks below 32 MiB from its heap instead of
mapping them afresh (`MALLOC_MMAP_THRESHOLD_`, otherwise adjusted as the run goes) and keeps up
to 1 GiB of freed heap for the next step instead of handing it back (`MALLOC_TRIM_THRESHOLD_`),
so a step reuses warm pages instead of faulting in new ones. Together 6 % off a K = 20
iteration of the default, 11 % with drafts (docs/results/es_throughput.md). Other allocators ignore
the glibc ones; nothing changes on GPU tensors."""


def worker_environment() -> dict[str, str]:
    """This process's environment for the workers: `WORKER_DEFAULTS` under it, and this job's pid."""
    return {**WORKER_DEFAULTS, **os.environ, JOB_PID: str(os.getpid())}


GUARD = "--die-with"
"""`python -m esforget.train.launch --die-with PID -- COMMAND…`: arm the parent-death signal, exec COMMAND."""

_PR_SET_PDEATHSIG = 1


def die_with_parent(job: int | None) -> None:
    """Have the kernel SIGKILL this process when its parent exits; exit now if it is already
    orphaned or the job process `job` is gone. Where there is no prctl (not Linux) only the
    run lock protects the run."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1 or (job is not None and not _alive(job)):
        os._exit(1)  # orphaned before the signal was armed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold `<out_dir>/train.lock` while training; fail at once, naming the holder, if another
    process holds it. The file stays behind; the lock lives in the kernel and dies with its
    holder, however it dies."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "train.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            message = f"{path} is held by {holder}: this run is being trained already; stop that first"
            raise RuntimeError(message) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


if __name__ == "__main__":
    if sys.argv[1] == GUARD:  # the launcher of a multi-process run, about to be exec'd
        die_with_parent(int(sys.argv[2]))
        os.execv(sys.argv[4], sys.argv[4:])
    # A worker of a multi-process run: die with the launcher, and never outlive the job.
    die_with_parent(int(os.environ[JOB_PID]) if JOB_PID in os.environ else None)
    # Every rank computes the same metrics; only rank 0 reports them.
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank{rank} %(name)s %(levelname)s %(message)s",
    )
    train(read_json(sys.argv[1]))
