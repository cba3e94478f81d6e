"""A training job as `esforget.train.launch` takes it: plain values, splits as parquet paths."""

from pathlib import Path


def launch_spec(method: dict, base_dir: Path, splits: Path, scorer: str, max_new_tokens: int, seed: int) -> dict:
    """The job of training `method` (named after its algorithm) from the base in `base_dir` on the
    `train.parquet` and `validation.parquet` in `splits`, one thread; `out_dir` is the caller's."""
    return {
        "method_name": method["algorithm"],
        "method": method,
        "base_dir": str(base_dir),
        "train": str(splits / "train.parquet"),
        "validation": str(splits / "validation.parquet"),
        "scorer": scorer,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "threads": 1,
    }
