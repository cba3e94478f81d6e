"""Where a run keeps its checkpoints, and how to find them again.

A run directory holds `checkpoints/step000040/` (HF model directories), `metrics.parquet`
and `run_config.json`, whichever algorithm made it: nothing downstream cares.

While a run trains it works in `<run>/partial/`, which no Snakemake rule declares: Snakemake
deletes a job's declared outputs before rerunning it, and this folder must survive a killed
job so that the rerun can resume. It holds the checkpoints written so far and the trainer's
resumable state; when the run ends, `publish` moves the checkpoints into the declared output.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import polars as pl

from esforget.core.files import write_json, write_parquet

_STEP_DIR = re.compile(r"^step(\d{6})$")

MASTER_DIR = "master"
"""Subfolder of a checkpoint holding the fp32 master its stored weights were rounded from."""


def checkpoint_name(step: int) -> str:
    return f"step{step:06d}"


def list_checkpoints(checkpoints_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, directory) of every complete checkpoint, in step order."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"missing checkpoints directory: {root}")
    found = []
    for child in root.iterdir():
        if match := _STEP_DIR.match(child.name):
            # checkpoints are renamed into place whole: one without its config was damaged after
            if not (child / "config.json").is_file():
                raise FileNotFoundError(f"{child}: a checkpoint folder without config.json, not a loadable model")
            found.append((int(match.group(1)), child))
    if not found:
        raise FileNotFoundError(f"no checkpoints (step??????/config.json) in {root}")
    return sorted(found)


def partial_dir(out: Path) -> Path:
    return out / "partial"


def drop_checkpoints_after(work: Path, step: int) -> None:
    """Remove checkpoints newer than the state a run resumes from (written just before a
    kill): the resumed run makes them again."""
    for child in (work / "checkpoints").glob("step??????"):
        if int(child.name[4:]) > step:
            shutil.rmtree(child)


def run_fingerprint(algorithm: str, cfg, seed: int, base_dir: str | Path) -> dict:
    """What defines a run's weights: its algorithm's typed config, seed and base. Kept with the
    resumable state (a resume under another config is refused) and published as
    `run_config.json` (a restored run is checked against the config, `esforget.versioning`)."""
    return {"algorithm": algorithm, "seed": seed, "base": str(base_dir), **dataclasses.asdict(cfg)}


RECORDED_ONLY = ("device", "computed_in")
"""The keys of run_config.json that record where and in which precision the run computed (for
the report), not what defines it: the same config computes in bf16 on one machine and in fp32
on another."""


def publish(work: Path, out: Path, metrics: pl.DataFrame, run_config: dict, device_name: str, computed_in: str) -> None:
    """Move a finished run's checkpoints into the declared outputs; remove the work folder.
    `run_config.json` records the run's definition and, for the report, the device it ran on
    (`device_name`: `esforget.core.models.device_name` of it) and the dtype its forward and
    backward passes computed in (`computed_in`)."""
    final = out / "checkpoints"
    if final.exists():
        shutil.rmtree(final)
    os.replace(work / "checkpoints", final)
    recorded = dict(zip(RECORDED_ONLY, (device_name, computed_in), strict=True))
    write_json({**run_config, **recorded}, out / "run_config.json")
    write_parquet(metrics, out / "metrics.parquet")  # last: the rule's completion marker
    shutil.rmtree(work)
