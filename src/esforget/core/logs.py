"""Send a stage's logging, warnings and progress bars to the log file Snakemake knows."""

from __future__ import annotations

import logging
import sys


def to_file(path: str) -> None:
    handle = open(path, "w", buffering=1)  # noqa: SIM115 (the job's log for the process's life); line-buffered for `tail -f`
    sys.stderr = sys.stdout = handle  # tqdm, warnings and TRL's log lines go here too
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    logging.captureWarnings(True)
