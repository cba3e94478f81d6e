"""Stage 5: how far each checkpoint moved from its base, tensor by tensor.

Why by hand: the quantities are the authors' (Frobenius norm of ΔW, share of entries with
|ΔW| ≤ τ per layer and bucket) and need their name rules. Tensors are streamed from the
safetensors files in row chunks, every checkpoint of a run against one read of the base.
Differences are computed in fp32 whatever dtype was stored; the stored dtype is recorded
because rounding decides what counts as "unchanged".

ΔW is taken against the base as training saw it: rounded to the dtype the run started from
(`reference_dtype`; an fp16 ES run of an fp32 base starts from the base rounded to fp16), so
that the rounding of θ₀ is not counted as an update.

Where a checkpoint keeps the fp32 master its stored weights were rounded from
(`<checkpoint>/master/`, `save_master`), the same metrics are computed from the master too
(`master_fro_norm`, `master_sparsity@τ`), with `erased@τ`: the share of entries that moved by
more than τ in the master but not as stored — the changes storage precision erased.
"""

from __future__ import annotations

import math
import re
from contextlib import ExitStack
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from esforget.core.checkpoints import MASTER_DIR
from esforget.core.tensors import TensorFile, tensor_files

BUCKET_RULES = [  # (bucket, pattern on the parameter name), first match wins
    ("Q", re.compile(r"q_proj")),
    ("K", re.compile(r"k_proj")),
    ("V", re.compile(r"v_proj")),
    ("O", re.compile(r"o_proj|self_attn\.dense")),
    ("MLP", re.compile(r"mlp\.")),
    ("LayerNorm", re.compile(r"norm")),
    ("embedding", re.compile(r"embed_tokens|lm_head|wte|wpe")),
]
_LAYER = re.compile(r"layers\.(\d+)\.")


def bucket(name: str) -> str:
    for label, pattern in BUCKET_RULES:
        if pattern.search(name):
            return label
    return "other"


def layer_index(name: str) -> int | None:
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


RANK_RTOL = 1e-5
"""Singular values below rtol × the largest count as zero in `rank_percent` (the authors')."""

CHUNK_ENTRIES = 2**22
"""Entries of a tensor read at once (16 MiB in fp32): peak memory is a few chunks, however
large the model's largest tensor (a 1.5B model's embedding is ~0.9 GB in fp32)."""


class _Totals:
    """Running reductions of one checkpoint's ΔW over the chunks of one tensor."""

    def __init__(self, thresholds: list[float]):
        self.squares, self.max_abs, self.numel = 0.0, 0.0, 0
        self.unchanged = dict.fromkeys(thresholds, 0)

    def add(self, delta: torch.Tensor) -> None:
        """Count `delta` in; it is left holding |delta|."""
        self.squares += float(delta.norm()) ** 2
        delta.abs_()
        if delta.numel():
            self.max_abs = max(self.max_abs, float(delta.max()))
        for tau in self.unchanged:
            self.unchanged[tau] += int(torch.count_nonzero(delta <= tau))
        self.numel += delta.numel()

    def metrics(self, base_norm: float) -> dict:
        fro = self.squares**0.5
        row = {
            "numel": self.numel,
            "fro_norm": fro,
            "base_norm": base_norm,
            "relative_norm": fro / base_norm if base_norm > 0 else float("nan"),
            "max_abs": self.max_abs,
        }
        for tau, count in self.unchanged.items():
            row[f"sparsity@{tau:g}"] = count / max(self.numel, 1)
        return row


class _StoredAndMaster:
    """The totals of a checkpoint as stored and, where it keeps one, of its fp32 master, with
    the count of entries that moved more than τ in the master but not as stored."""

    def __init__(self, thresholds: list[float], with_master: bool):
        self.stored = _Totals(thresholds)
        self.master = _Totals(thresholds) if with_master else None
        self.erased = dict.fromkeys(thresholds, 0)
        self.dot = 0.0  # ⟨ΔW, ΔW_reference⟩, where a reference update is given

    def add(self, stored: torch.Tensor, master: torch.Tensor | None, reference: torch.Tensor | None = None) -> None:
        if reference is not None:
            self.dot += float((stored.double() * reference.double()).sum())
        self.stored.add(stored)
        if self.master is None:
            return
        self.master.add(master)
        for tau in self.erased:
            self.erased[tau] += int(torch.count_nonzero((master > tau) & (stored <= tau)))

    def metrics(self, base_norm: float) -> dict:
        row = self.stored.metrics(base_norm)
        master = self.master.metrics(base_norm) if self.master else None
        row["master_fro_norm"] = master["fro_norm"] if master else None
        for tau in self.erased:
            row[f"master_sparsity@{tau:g}"] = master[f"sparsity@{tau:g}"] if master else None
            row[f"erased@{tau:g}"] = self.erased[tau] / max(self.stored.numel, 1) if master else None
        return row


def _row_ranges(shape: list[int]) -> list[tuple[int, int]]:
    """Ranges of leading-dimension rows holding about CHUNK_ENTRIES entries each."""
    if not shape:
        return [(0, 1)]
    per_row = max(1, math.prod(shape[1:]))
    step = max(1, CHUNK_ENTRIES // per_row)
    return [(a, min(a + step, shape[0])) for a in range(0, shape[0], step)]


def _rank_percent(base: TensorFile, tuned: TensorFile, name: str, reference: torch.dtype) -> float | None:
    """Rank of a 2-D ΔW as % of full rank; None for other shapes (norm weights, biases).
    Needs the whole ΔW (an SVD), so the one place a full tensor pair is read."""
    shape = base.shape(name)
    if len(shape) != 2:
        return None
    delta = tuned.rows(name, 0, shape[0]).float() - base.rows(name, 0, shape[0]).to(reference).float()
    return 100.0 * int(torch.linalg.matrix_rank(delta, rtol=RANK_RTOL)) / min(shape)


def diff_checkpoint(
    base_dir: str | Path,
    tuned_dir: str | Path,
    thresholds: list[float],
    rank: bool = False,
    reference_dtype: str = "float32",
    compare_to: tuple[Path, str] | None = None,
) -> pl.DataFrame:
    """One row per parameter tensor: name, layer, bucket, stored dtype and the metrics."""
    return diff_run(base_dir, [(0, Path(tuned_dir))], thresholds, rank, reference_dtype, compare_to).drop("step")


def diff_run(
    base_dir: str | Path,
    checkpoints: list[tuple[int, Path]],
    thresholds: list[float],
    rank: bool = False,
    reference_dtype: str = "float32",
    compare_to: tuple[Path, str] | None = None,
) -> pl.DataFrame:
    """Every checkpoint of a run against the base in one pass over the base's tensors.

    Each chunk of a base tensor is read once and compared with the same chunk of every
    checkpoint (and of its fp32 master, if it keeps one), so the base is read once per run
    instead of once per checkpoint, and peak memory is a few chunks (CHUNK_ENTRIES), never a
    whole tensor, let alone two models. The base is rounded to `reference_dtype`, the dtype
    the run started from; ΔW is computed in fp32 whatever dtype was stored. One row per
    (step, tensor).

    `compare_to` (a checkpoint of another run from the same base, and the dtype that run
    started from) adds each tensor's ⟨ΔW, ΔW_other⟩ (`dot_reference`, float64) and ‖ΔW_other‖
    (`reference_fro_norm`), so that `summarise` gives the cosine between the two updates
    (Hoy et al., arXiv 2604.01499: ES's and GRPO's update directions are nearly orthogonal).
    """
    reference = getattr(torch, reference_dtype)  # "float32" | "bfloat16" | "float16", checked by the configs
    base_index = tensor_files(base_dir)
    if compare_to is not None:
        other_dir, other_dtype = Path(compare_to[0]), getattr(torch, compare_to[1])
        other_index = tensor_files(other_dir)
        if set(other_index) != set(base_index):
            differing = sorted(set(base_index) ^ set(other_index))[:5]
            raise ValueError(f"{other_dir} and {base_dir} hold different tensors, e.g. {differing}")
    indexes = []
    for step, path in checkpoints:
        master = tensor_files(path / MASTER_DIR) if (path / MASTER_DIR).is_dir() else None
        indexes.append((step, path, tensor_files(path), master))
        for where, index in ((path, indexes[-1][2]), (path / MASTER_DIR, master)):
            if index is not None and set(index) != set(base_index):
                differing = sorted(set(base_index) ^ set(index))[:5]
                raise ValueError(f"{where} and {base_dir} hold different tensors, e.g. {differing}")
    rows = []
    with ExitStack() as stack:
        files: dict[Path, TensorFile] = {}

        def reader(file: Path) -> TensorFile:
            if file not in files:
                files[file] = TensorFile(file)
                stack.callback(files[file].close)
            return files[file]

        for name in tqdm(sorted(base_index), desc="tensors", unit="tensor", mininterval=5):
            base = reader(base_index[name])
            shape = base.shape(name)
            tuned = [(reader(index[name]), reader(master[name]) if master else None) for _, _, index, master in indexes]
            for (_, path, _, _), (file, master_file) in zip(indexes, tuned, strict=True):
                for where, f in ((path, file), (path / MASTER_DIR, master_file)):
                    if f is not None and f.shape(name) != shape:
                        raise ValueError(f"{name}: shape {tuple(f.shape(name))} in {where} vs {tuple(shape)} in base")
            totals = [_StoredAndMaster(thresholds, master_file is not None) for _, master_file in tuned]
            base_squares, other_squares = 0.0, 0.0
            for a, b in _row_ranges(shape):
                raw = base.rows(name, a, b)
                base_rows = raw.to(reference).float()
                base_squares += float(base_rows.norm()) ** 2
                other = None
                if compare_to is not None:
                    other = reader(other_index[name]).rows(name, a, b).float() - raw.to(other_dtype).float()
                    other_squares += float(other.double().square().sum())
                for (file, master_file), total in zip(tuned, totals, strict=True):
                    master_delta = master_file.rows(name, a, b).float() - base_rows if master_file else None
                    total.add(file.rows(name, a, b).float() - base_rows, master_delta, other)
            for (step, _, _, _), (file, _), total in zip(indexes, tuned, totals, strict=True):
                row = {
                    "step": step,
                    "tensor": name,
                    "layer": layer_index(name),
                    "bucket": bucket(name),
                    "stored_dtype": str(file.dtype(name)).removeprefix("torch."),
                    **total.metrics(base_squares**0.5),
                }
                if compare_to is not None:
                    row["dot_reference"], row["reference_fro_norm"] = total.dot, other_squares**0.5
                if rank:
                    row["rank_percent"] = _rank_percent(base, file, name, reference)
                rows.append(row)
    types = {
        "layer": pl.Int64,
        "master_fro_norm": pl.Float64,
        **{f"{kind}@{tau:g}": pl.Float64 for tau in thresholds for kind in ("master_sparsity", "erased")},
    }
    if rank:
        types["rank_percent"] = pl.Float64
    return pl.DataFrame(rows, schema_overrides=types)


def summarise(per_tensor: pl.DataFrame, thresholds: list[float]) -> dict:
    """Whole-model figures: ‖ΔW‖_F over all parameters and relative to ‖W₀‖_F, overall and
    layer-average sparsity, the cosine to a reference update where one was compared; where the
    checkpoint keeps its fp32 master, the master's norm and sparsity and the erased share."""
    out = {"fro_norm": float((per_tensor["fro_norm"] ** 2).sum() ** 0.5)}
    # ‖ΔW‖_F / ‖W₀‖_F over the whole model: the independent reproduction's predictor of forgetting
    base_norm = float((per_tensor["base_norm"] ** 2).sum() ** 0.5)
    out["relative_norm"] = out["fro_norm"] / base_norm if base_norm > 0 else float("nan")
    if "dot_reference" in per_tensor.columns and per_tensor["dot_reference"].is_not_null().all():
        lengths = out["fro_norm"] * float((per_tensor["reference_fro_norm"] ** 2).sum() ** 0.5)
        out["cosine_reference"] = float(per_tensor["dot_reference"].sum()) / lengths if lengths > 0 else float("nan")
    with_master = "master_fro_norm" in per_tensor.columns and per_tensor["master_fro_norm"].is_not_null().all()
    out["master_fro_norm"] = float((per_tensor["master_fro_norm"] ** 2).sum() ** 0.5) if with_master else None
    numel = per_tensor["numel"]
    for tau in thresholds:
        col = f"sparsity@{tau:g}"
        out[f"{col}/overall"] = float((per_tensor[col] * numel).sum() / numel.sum())
        # The authors' "layer average": the mean of per-tensor sparsities.
        out[f"{col}/tensor_mean"] = float(per_tensor[col].mean())
        for kind in ("master_sparsity", "erased"):
            share = f"{kind}@{tau:g}"
            out[f"{share}/overall"] = float((per_tensor[share] * numel).sum() / numel.sum()) if with_master else None
    return out
