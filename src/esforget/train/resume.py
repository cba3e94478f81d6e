"""The resumable state of a training run: one protocol for both trainers.

While a run trains it works in `<run>/partial/` (`esforget.core.checkpoints.partial_dir`). At
every checkpoint the trainer writes what it needs to continue into a state folder of its own
— ES: θ and the restores' summed drift; GRPO: TRL's checkpoint (model, optimizer, scheduler,
RNG states) — and then calls `complete`, which adds the metrics so far and, last, a state file
naming the checkpoint's step and the run's config. A folder without that file was cut short
and is never resumed from, so a kill at any moment leaves either the previous state or the
new one, never half of one.

`latest` is what a restarted job calls first: it keeps the newest complete state written for
this config, removes every other folder beside it, and removes checkpoints newer than it
(written before the kill, after the state it resumes from: the run makes them again). A state
written for another config is not resumed: the work folder is removed and the run starts over.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from esforget.core.checkpoints import drop_checkpoints_after
from esforget.core.files import read_json, read_parquet, write_json, write_parquet

log = logging.getLogger(__name__)

STATE_FILE = "resumable_state.json"
"""Written last into a state folder: its presence makes the folder a state to resume from."""
METRICS_FILE = "metrics_so_far.parquet"


@dataclass(frozen=True)
class State:
    """A complete state: its folder, the checkpoint step it was written at (ES iteration, GRPO
    rollout) and the metrics rows up to it."""

    folder: Path
    step: int
    rows: list[dict]


def complete(folder: Path, step: int, metrics: pl.DataFrame, fingerprint: dict) -> None:
    """Make `folder`, which holds what the trainer saved at checkpoint `step`, a state to resume
    from: the metrics so far, then the state file naming `step` and the run's `fingerprint`.
    The states before it, beside it in its parent folder, are removed."""
    write_parquet(metrics, folder / METRICS_FILE)
    write_json({"step": step, "config": fingerprint}, folder / STATE_FILE)
    for other in folder.parent.iterdir():
        if other != folder and other.is_dir():
            shutil.rmtree(other)


def latest(states: Path, work: Path, fingerprint: dict) -> State | None:
    """The newest complete state in the folder `states` (inside the work folder `work`) written
    for `fingerprint`, every other folder in `states` and every checkpoint after it removed;
    None to start afresh (nothing complete: `states` is removed; another config's state: all of
    `work` is removed)."""
    complete_states = []
    for folder in states.iterdir() if states.is_dir() else []:
        if (folder / STATE_FILE).is_file():
            complete_states.append((read_json(folder / STATE_FILE), folder))
    if not complete_states:
        shutil.rmtree(states, ignore_errors=True)
        return None
    recorded, newest = max(complete_states, key=lambda state: state[0]["step"])
    if recorded["config"] != fingerprint:
        log.warning("ignoring %s: it was written for another config; starting over", work)
        shutil.rmtree(work)
        return None
    for other in states.iterdir():
        if other != newest:
            shutil.rmtree(other) if other.is_dir() else other.unlink()
    drop_checkpoints_after(work, recorded["step"])
    log.info("resuming from step %d (%s)", recorded["step"], newest)
    return State(newest, recorded["step"], read_parquet(newest / METRICS_FILE).to_dicts())
