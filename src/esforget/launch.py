"""Start a training job in this process, or as a group of processes.

ES spreads its population over processes (`esforget.distributed`); GRPO spreads each
mini-batch over GPUs (data parallel, through accelerate). The rule calls `run` with the number
of processes it was given; with more than one, the job's arguments go to a JSON file and a
launcher starts this module once per process: for ES
`python -m torch.distributed.run --nproc-per-node P -m esforget.launch JOB`, for GRPO
`accelerate launch --config_file workflow/accelerate/multi_gpu.yaml --num_processes P ...`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from esforget import methods
from esforget.io import read_json, read_parquet, write_json


def train(job: dict) -> None:
    """Run one job described by plain values (paths, not frames), as `run` writes it."""
    methods.train(
        job["method_name"],
        job["method"],
        base_dir=job["base_dir"],
        train_rows=read_parquet(job["train"]),
        validation_rows=read_parquet(job["validation"]),
        scorer=job["scorer"],
        max_new_tokens=job["max_new_tokens"],
        seed=job["seed"],
        out_dir=job["out_dir"],
        threads=job["threads"],
        stop_strings=job.get("stop_strings", []),
    )


ACCELERATE_CONFIG = Path(__file__).resolve().parents[2] / "workflow" / "accelerate" / "multi_gpu.yaml"


def run(job: dict, processes: int) -> None:
    """Train in this process, or in `processes` processes: ES under torchrun (members split
    between them), GRPO under `accelerate launch` (data parallel, GPUs only)."""
    if processes == 1:
        train(job)
        return
    spec = Path(job["out_dir"]) / "launch.json"
    write_json({**job, "threads": 1}, spec)
    if job["method"]["algorithm"] == "es":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   "-m", "esforget.launch", str(spec)]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
                   f"--num_processes={processes}", "-m", "esforget.launch", str(spec)]
    try:
        # The children write where this job's log goes (sys.stdout is the log file here).
        subprocess.run(command, check=True, stdout=sys.stdout, stderr=sys.stderr)
    finally:
        spec.unlink(missing_ok=True)


if __name__ == "__main__":
    # Every rank computes the same metrics; only rank 0 reports them.
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s rank{rank} %(name)s %(levelname)s %(message)s")
    train(read_json(sys.argv[1]))
