"""Atomic file and directory writes, hashing and small JSON helpers.

Nothing half-written may ever be read as complete: every writer here writes to a temporary
sibling and renames it into place, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        if directory and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        # Statistics carry no information here and make the bytes depend on the writer's
        # version less; a fixed compression keeps the files byte-identical across runs.
        frame.write_parquet(tmp, compression="zstd", statistics=False)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike, expect: type | None = None) -> Any:
    """The JSON in `path`; with `expect` (e.g. dict), an error unless the document is one."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing input file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt JSON in {path}: {err}") from None
    if expect is not None and not isinstance(document, expect):
        names = {dict: "object", list: "array"}
        raise ValueError(f"{path}: expected a JSON {names.get(expect, expect.__name__)}, got {type(document).__name__}")
    return document


def read_parquet(path: str | os.PathLike, columns: tuple[str, ...] = (), nonempty: bool = False) -> pl.DataFrame:
    """The table in `path`, refused (naming the file) when it cannot be read, lacks one of
    `columns`, or — with `nonempty` — holds no rows: checked on open, before any work on it."""
    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing input file: {path}") from None
    except Exception as err:  # polars raises ComputeError / OSError variants for corrupt files
        raise ValueError(f"cannot read parquet file {path}: {err}") from None
    if missing := [c for c in columns if c not in frame.columns]:
        raise ValueError(f"{path}: missing column(s) {missing}; it has {frame.columns}")
    if nonempty and frame.height == 0:
        raise ValueError(f"{path}: no rows")
    return frame


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
