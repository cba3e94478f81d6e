"""What made a report: the code (git commit, and whether the tree had uncommitted changes), the
resolved config, the package versions, the data (each split's sha256 from its manifest), the
devices the runs trained on, and the wall time of every stage (Snakemake's benchmark files).
The report prints it, so a number on the page can be traced to what computed it.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import polars as pl

from esforget.core.checkpoints import RECORDED_ONLY
from esforget.core.files import read_json
from esforget.core.models import device_name

PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "snakemake",
    "polars",
    "altair",
    "vl-convert-python",
    "numpy",
    "scipy",
    "dvc",
    "math-verify",
)
"""Packages whose version decides numbers or figures."""


def git_state(repo: Path) -> dict:
    """Commit and dirtiness of the checkout at `repo` (none outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "not a git checkout", "dirty": None}
    return {"commit": commit, "dirty": bool(changed), "changed": changed.splitlines()}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def data_hashes(manifests: list[str | Path]) -> pl.DataFrame:
    """(data folder, split, rows, sha256) of every prepared split, from the manifests."""
    rows = []
    for path in manifests:
        manifest = read_json(path)
        for split, entry in manifest["splits"].items():
            rows.append(
                {"data": Path(path).parent.name, "split": split, "rows": entry["rows"], "sha256": entry["sha256"]}
            )
    return pl.DataFrame(rows, schema={"data": pl.String, "split": pl.String, "rows": pl.Int64, "sha256": pl.String})


def stage_times(benchmark_dir: Path) -> pl.DataFrame:
    """Wall time and peak memory of every job, from Snakemake's benchmark files under
    `benchmark_dir` (one per job, path mirroring the job's outputs)."""
    rows = []
    for path in sorted(benchmark_dir.rglob("*.tsv")):
        table = pl.read_csv(path, separator="\t")
        rows.append(
            {
                "job": str(path.relative_to(benchmark_dir).with_suffix("")),
                "seconds": float(table["s"][-1]),
                "max_rss_mb": float(table["max_rss"][-1]) if "max_rss" in table.columns else None,
            }
        )
    return pl.DataFrame(rows, schema={"job": pl.String, "seconds": pl.Float64, "max_rss_mb": pl.Float64})


def devices(run_configs: list[str | Path]) -> list[str]:
    """The devices the runs trained on and the dtype they computed in, as their run_config.json
    records them (runs published before the dtype was recorded name the device only)."""
    device, computed_in = RECORDED_ONLY
    found = set()
    for path in run_configs:
        recorded = read_json(path)
        dtype = f", computed in {recorded[computed_in]}" if computed_in in recorded else ""
        found.add(recorded.get(device, "not recorded") + dtype)
    return sorted(found)


def this_device() -> str:
    """The device this process computes on."""
    import torch

    return device_name("cuda:0" if torch.cuda.is_available() else "cpu")
