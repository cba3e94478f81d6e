"""Per-step metrics as TensorBoard event files, written while a run trains, so that
`tensorboard --logdir results/` shows every run's curves live; `metrics.parquet`, written when
the run ends, stays the record the report reads.

Switched on by `logging.report_to: [tensorboard]` in the config (off by default: it needs the
`tensorboard` package). ES and GRPO write the rows of their metrics table under the same names
(`fitness/mean`, `reward/mean`, `val/accuracy`, `perf/seconds`, …) into `<run>/tensorboard/`;
GRPO also hands `report_to` to TRL, whose own logs go to `<run>/tensorboard/trl/`. A resumed
run drops the events of the steps it repeats (`purge_step`), so the curves do not double back.
"""

from __future__ import annotations

import math
from pathlib import Path

REPORTERS = ("tensorboard",)


def tensorboard_dir(out_dir: Path) -> Path:
    return out_dir / "tensorboard"


class LiveMetrics:
    """Writes metric rows as scalars, one event per numeric value, flushed after every row."""

    def __init__(self, out_dir: Path, report_to: tuple[str, ...], first_step: int = 1):
        unknown = set(report_to) - set(REPORTERS)
        if unknown:
            raise ValueError(f"logging.report_to: unknown {sorted(unknown)}; expected some of {list(REPORTERS)}")
        self.writer = None
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "logging.report_to: [tensorboard] needs the tensorboard package (pip install tensorboard)"
                ) from err
            self.writer = SummaryWriter(log_dir=str(tensorboard_dir(out_dir)), purge_step=first_step)

    def add(self, row: dict) -> None:
        if self.writer is None:
            return
        for name, value in row.items():
            if name == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isnan(value):
                self.writer.add_scalar(name, value, row["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
