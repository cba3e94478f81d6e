"""Where a run keeps its checkpoints, and how to find them again.

A run directory holds `checkpoints/step000040/` (HF model directories), `metrics.parquet`
and `run_config.json`, whichever algorithm made it: nothing downstream cares.
"""

from __future__ import annotations

import re
from pathlib import Path

_STEP_DIR = re.compile(r"^step(\d{6})$")


def checkpoint_name(step: int) -> str:
    return f"step{step:06d}"


def list_checkpoints(checkpoints_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, directory) of every complete checkpoint, in step order."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"missing checkpoints directory: {root}")
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / "config.json").exists():
            found.append((int(match.group(1)), child))
    if not found:
        raise FileNotFoundError(f"no checkpoints (step??????/config.json) in {root}")
    return sorted(found)
