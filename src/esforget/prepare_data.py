"""Stage 1: write each task's splits as parquet with a manifest (rows, seed, source, sha256)."""

from __future__ import annotations

from pathlib import Path

from esforget.io import sha256_file, write_json, write_parquet
from esforget.tasks.sources import SPLITS, build_splits, manifest


def prepare_task(task: dict, seed: int, out_dir: str | Path) -> None:
    """Build the splits of one task config (`config.tasks.<name>`) into `out_dir`."""
    out = Path(out_dir)
    frames = build_splits(task["source"], task.get("splits", {}), seed)
    hashes = {}
    for split in SPLITS:
        path = out / f"{split}.parquet"
        write_parquet(frames[split], path)
        hashes[split] = sha256_file(path)
    write_json(manifest(frames, hashes, task["source"], seed), out / "manifest.json")
