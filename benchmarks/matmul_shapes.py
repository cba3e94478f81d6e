"""The matrix-product rate this CPU reaches at the shapes a model's stages multiply, against the
one prefill-sized product the floors are priced at (`es_iteration.machine_rates`, 512 rows).

    python benchmarks/matmul_shapes.py                       # SmolLM2-135M's products, 1 and 2 threads
    python benchmarks/matmul_shapes.py --rows 16 512 --threads 2 --dtype bfloat16

A decode step multiplies a few rows (one per sequence) by every weight matrix; a prefill or a
training pass, hundreds. One row per (threads, product): GFLOP/s of `torch.mm` at each row
count, warmed up, the best of 7 timings of repeated products (≈ 50 ms each).
"""

from __future__ import annotations

import argparse
import time

import torch

SMOLLM2_PRODUCTS = {  # (in, out) of SmolLM2-135M's distinct weight matrices
    "attention q, o": (576, 576),
    "attention k, v": (576, 192),
    "MLP gate, up": (576, 1536),
    "MLP down": (1536, 576),
    "output layer": (576, 49152),
}


def rate(rows: int, inner: int, columns: int, dtype: torch.dtype) -> float:
    """FLOP/s of `rows × inner` times `inner × columns`, the best of 7 timings."""
    a, b = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, columns, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    started = time.perf_counter()
    torch.mm(a, b)
    repeats = max(1, int(0.05 / max(time.perf_counter() - started, 1e-6)))
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * rows * inner * columns / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 64, 128, 512, 960])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    print(f"GFLOP/s of torch.mm in {args.dtype} ({torch.backends.cpu.get_cpu_capability()} kernels)\n")
    print(" | ".join(["threads", "product", "in → out", *(f"{r} rows" for r in args.rows)]))
    print(" | ".join(["---"] * (3 + len(args.rows))))
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, (inner, columns) in SMOLLM2_PRODUCTS.items():
            rates = [f"{rate(r, inner, columns, dtype) / 1e9:.0f}" for r in args.rows]
            print(" | ".join([str(threads), name, f"{inner:,} → {columns:,}", *rates]), flush=True)


if __name__ == "__main__":
    main()
