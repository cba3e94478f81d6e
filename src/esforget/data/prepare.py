"""Stage 1: write each task's splits as parquet with a manifest (rows, seed, source, sha256),
and check, wherever a later stage reads a split, that it is what this config would prepare."""

from __future__ import annotations

import json
from pathlib import Path

from esforget.core.files import read_json, sha256_file, write_json, write_parquet
from esforget.data.sources import SPLITS, build_splits, manifest


def prepare_task(task: dict, seed: int, out_dir: str | Path) -> None:
    """Build the splits of one task config (`config.tasks.<name>`) into `out_dir`."""
    out = Path(out_dir)
    frames = build_splits(task["source"], task.get("splits", {}), seed)
    if empty := [split for split in SPLITS if frames[split].height == 0]:
        raise ValueError(f"{out}: the source {task['source']} gave no rows for split(s) {empty}; nothing written")
    hashes = {}
    for split in SPLITS:
        path = out / f"{split}.parquet"
        write_parquet(frames[split], path)
        hashes[split] = sha256_file(path)
    write_json(manifest(frames, hashes, task["source"], seed), out / "manifest.json")


def check_prepared(path: str | Path, task: dict, seed: int) -> None:
    """Refuse a split this config did not prepare: its manifest must record the configured
    source and `data_seed`, and the file must hold the bytes the manifest hashed.

    Snakemake reruns `prepare_data` when the config changes only while its own bookkeeping
    (`.snakemake/metadata`) knows what the data were made from; after a restore from another
    version, a fresh clone or `--touch`, it does not. This check makes the stage that would
    read stale data stop instead, naming the file and the value that differs."""
    path = Path(path)
    recorded = read_json(path.parent / "manifest.json", expect=dict)
    configured = json.loads(json.dumps(task["source"]))  # as the manifest stores it
    if recorded["seed"] != seed:
        raise ValueError(
            f"{path} was prepared with data_seed={recorded['seed']}, the config has {seed}: "
            "rerun prepare_data (snakemake --forcerun prepare_data)"
        )
    if recorded["source"] != configured:
        differing = sorted(
            k for k in set(recorded["source"]) | set(configured) if recorded["source"].get(k) != configured.get(k)
        )
        raise ValueError(
            f"{path} was prepared from another source: {differing} differ "
            f"({[recorded['source'].get(k) for k in differing]} in its manifest, "
            f"{[configured.get(k) for k in differing]} in the config); rerun prepare_data"
        )
    if sha256_file(path) != recorded["splits"][path.stem]["sha256"]:
        raise ValueError(f"{path} does not hold the data its manifest records (sha256 differs): rerun prepare_data")
