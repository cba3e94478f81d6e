"""Stage 5: how far each checkpoint moved from its base, tensor by tensor.

Why by hand: the quantities are the authors' (Frobenius norm of ΔW, share of entries with
|ΔW| ≤ τ per layer and bucket) and need their name rules. Tensors are streamed from the
safetensors files (memory-mapped), so at most one base and one tuned tensor are in memory.
Differences are computed in fp32 whatever dtype was stored; the stored dtype is recorded
because rounding decides what counts as "unchanged".
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import torch
from safetensors import safe_open
from tqdm import tqdm

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


def tensor_files(model_dir: str | Path) -> dict[str, Path]:
    """Parameter name → the safetensors file holding it (single file or sharded)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors files in {model_dir}")
    index = {}
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():
                index[name] = file
    return index


def load_tensor(file: Path, name: str) -> torch.Tensor:
    """One tensor from a safetensors file, read through a memory map."""
    with safe_open(file, framework="pt") as handle:
        return handle.get_tensor(name)


RANK_RTOL = 1e-5
"""Singular values below rtol × the largest count as zero in `rank_percent` (the authors')."""


def tensor_metrics(base: torch.Tensor, tuned: torch.Tensor, thresholds: list[float], rank: bool = False) -> dict:
    """ΔW = tuned − base in fp32, reduced in place so that at most base, ΔW and one boolean
    mask are alive at once."""
    delta = tuned.to(torch.float32, copy=True)
    delta.sub_(base.float())
    base_norm = float(base.float().norm())
    fro = float(delta.norm())
    row = {
        "numel": delta.numel(),
        "fro_norm": fro,
        "relative_norm": fro / base_norm if base_norm > 0 else float("nan"),
    }
    if rank:
        row["rank_percent"] = _rank_percent(delta)
    delta.abs_()
    row["max_abs"] = float(delta.max()) if delta.numel() else 0.0
    for tau in thresholds:
        row[f"sparsity@{tau:g}"] = int((delta <= tau).sum()) / max(delta.numel(), 1)
    return row


def _rank_percent(delta: torch.Tensor) -> float | None:
    """Rank of a 2-D ΔW as % of full rank; None for other shapes (norm weights, biases)."""
    if delta.dim() != 2:
        return None
    return 100.0 * int(torch.linalg.matrix_rank(delta, rtol=RANK_RTOL)) / min(delta.shape)


def diff_checkpoint(base_dir: str | Path, tuned_dir: str | Path, thresholds: list[float], rank: bool = False) -> pl.DataFrame:
    """One row per parameter tensor: name, layer, bucket, stored dtype and the metrics."""
    return diff_run(base_dir, [(0, Path(tuned_dir))], thresholds, rank).drop("step")


def diff_run(
    base_dir: str | Path, checkpoints: list[tuple[int, Path]], thresholds: list[float], rank: bool = False
) -> pl.DataFrame:
    """Every checkpoint of a run against the base in one pass over the base's tensors.

    Each base tensor is read once and compared with that tensor of every checkpoint, so the
    base is read once per run instead of once per checkpoint; peak memory stays at about two
    tensors (base and ΔW), never two models. One row per (step, tensor).
    """
    base_index = tensor_files(base_dir)
    indexes = [(step, path, tensor_files(path)) for step, path in checkpoints]
    for _, path, index in indexes:
        if set(index) != set(base_index):
            differing = sorted(set(base_index) ^ set(index))[:5]
            raise ValueError(f"{path} and {base_dir} hold different tensors, e.g. {differing}")
    rows = []
    # Files are opened per tensor, not held open for the pass: a memory map's touched pages
    # count as resident while it is mapped, which would grow to the size of every file read.
    for name in tqdm(sorted(base_index), desc="tensors", unit="tensor", mininterval=5):
        base = load_tensor(base_index[name], name)
        for step, path, index in indexes:
            tuned = load_tensor(index[name], name)
            if base.shape != tuned.shape:
                raise ValueError(f"{name}: shape {tuple(tuned.shape)} in {path} vs {tuple(base.shape)} in base")
            rows.append(
                {
                    "step": step,
                    "tensor": name,
                    "layer": layer_index(name),
                    "bucket": bucket(name),
                    "stored_dtype": str(tuned.dtype).removeprefix("torch."),
                    **tensor_metrics(base, tuned, thresholds, rank),
                }
            )
            del tuned
    return pl.DataFrame(rows, schema_overrides={"layer": pl.Int64, "rank_percent": pl.Float64} if rank else {"layer": pl.Int64})


def summarise(per_tensor: pl.DataFrame, thresholds: list[float]) -> dict:
    """Whole-model figures: ‖ΔW‖_F over all parameters, overall and layer-average sparsity."""
    out = {"fro_norm": float((per_tensor["fro_norm"] ** 2).sum() ** 0.5)}
    for tau in thresholds:
        col = f"sparsity@{tau:g}"
        out[f"{col}/overall"] = float((per_tensor[col] * per_tensor["numel"]).sum() / per_tensor["numel"].sum())
        # The authors' "layer average": the mean of per-tensor sparsities.
        out[f"{col}/tensor_mean"] = float(per_tensor[col].mean())
    return out
