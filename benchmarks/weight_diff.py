"""Weight-difference analysis: this implementation against the straightforward one.

    python benchmarks/weight_diff.py [--checkpoints 3] [--repeats 2] [--workdir /tmp/wd-bench]

Builds a base with SmolLM2-135M's shapes (random weights: the analysis reads bytes, their
values do not matter for its cost) and several checkpoints made by perturbing it as ES does
(every entry) and as GRPO does (a few entries), then times, each in a fresh process so that
peak RSS is its own:
  - esforget: `esforget.analyze.weight_diff.diff_run`, every checkpoint of the run in one pass over
    the base, one tensor at a time from memory-mapped safetensors;
  - straightforward: per checkpoint, load both full state dicts and loop over the tensors,
    as a first implementation would.
Both compute the same per-tensor metrics. Files are in the page cache (just written, then read
once to warm). Two floors are printed: reading the bytes once (bytes read ÷ memory bandwidth,
measured with one large copy), and the element-wise passes the metrics need over each
checkpoint's entries (convert, subtract, norm, abs, max, one compare per τ: about 6 + |τ|
passes of 4 bytes per entry, also at that bandwidth).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SMOLLM2_135M = dict(  # the shapes of HuggingFaceTB/SmolLM2-135M-Instruct
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    tie_word_embeddings=True,
)
THRESHOLDS = [1e-6, 1e-4]


def build(workdir: Path, checkpoints: int) -> list[tuple[int, Path]]:
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M))
    model.save_pretrained(workdir / "base")
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    made = []
    for k in range(checkpoints):
        generator = torch.Generator().manual_seed(k)
        if k % 2 == 0:  # ES-like: every entry moves
            tuned = {n: t + 1e-3 * torch.randn(t.shape, generator=generator) for n, t in state.items()}
        else:  # GRPO-like: about 1 entry in 1,000 moves
            tuned = {n: t + 1e-3 * (torch.rand(t.shape, generator=generator) < 1e-3) for n, t in state.items()}
        folder = workdir / f"step{k + 1:06d}"
        folder.mkdir(exist_ok=True)
        save_file(tuned, folder / "model.safetensors")
        (folder / "config.json").write_text((workdir / "base" / "config.json").read_text())
        made.append((k + 1, folder))
    return made


def straightforward(base_dir: Path, checkpoints: list[tuple[int, Path]]) -> int:
    from safetensors.torch import load_file

    rows = 0
    for _, folder in checkpoints:
        base = load_file(base_dir / "model.safetensors")
        tuned = load_file(folder / "model.safetensors")
        for name, b in base.items():
            delta = tuned[name].float() - b.float()
            _ = (float(delta.norm()), float(delta.norm() / b.float().norm()), float(delta.abs().max()))
            _ = [float((delta.abs() <= tau).float().mean()) for tau in THRESHOLDS]
            rows += 1
    return rows


def peak_rss_mib() -> float:
    """This process's resident high-water mark. VmHWM, not getrusage's ru_maxrss: the latter
    survives exec, so a child would inherit the parent's peak from building the checkpoints."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(impl: str, workdir: Path) -> dict:
    """Run in this process; the high-water mark after imports is the baseline."""
    from esforget.analyze.weight_diff import diff_run

    checkpoints = sorted((int(p.name[4:]), p) for p in workdir.glob("step*"))
    baseline = peak_rss_mib()
    start = time.perf_counter()
    if impl == "esforget":
        rows = diff_run(workdir / "base", checkpoints, THRESHOLDS).height
    else:
        rows = straightforward(workdir / "base", checkpoints)
    seconds = time.perf_counter() - start
    return {
        "impl": impl,
        "seconds": seconds,
        "rows": rows,
        "checkpoints": len(checkpoints),
        "peak_rss_mib": peak_rss_mib(),
        "baseline_rss_mib": baseline,
    }


def bandwidth_gib_s() -> float:
    """Single-threaded memory copy bandwidth (read + write of 512 MiB)."""
    src = torch.empty(2**27, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return src.numel() * 4 / best / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each implementation")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/esforget-weight-diff-bench"))
    parser.add_argument("--measure", choices=["esforget", "straightforward"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workdir)))
        return

    torch.set_num_threads(1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoints = build(args.workdir, args.checkpoints)
    files = [args.workdir / "base" / "model.safetensors", *(folder / "model.safetensors" for _, folder in checkpoints)]
    size = files[0].stat().st_size
    for f in files:  # warm the page cache so both implementations read from memory
        f.read_bytes()
    results = []
    for _ in range(args.repeats):
        for impl in ("esforget", "straightforward"):
            done = subprocess.run(
                [sys.executable, __file__, "--measure", impl, "--workdir", str(args.workdir)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    k = len(checkpoints)
    bandwidth = bandwidth_gib_s()
    print(f"{k} checkpoints of SmolLM2-135M shape, {size / 2**20:.0f} MiB each (fp32), 1 thread, page cache warm")
    print(f"memory copy bandwidth {bandwidth:.1f} GiB/s")
    passes = 6 + len(THRESHOLDS)
    print(
        f"{'implementation':<16} {'s/checkpoint':>12} {'peak RSS MiB':>13} {'above import':>13} {'bytes read':>11} "
        f"{'read floor':>11} {'pass floor':>11}"
    )
    for r in results:
        read = size * (1 + k) if r["impl"] == "esforget" else 2 * size * k
        read_floor = read / k / (bandwidth * 2**30)
        pass_floor = passes * size / (bandwidth * 2**30)
        print(
            f"{r['impl']:<16} {r['seconds'] / k:>12.2f} {r['peak_rss_mib']:>13.0f} "
            f"{r['peak_rss_mib'] - r['baseline_rss_mib']:>13.0f} {read / 2**30:>9.2f} G "
            f"{read_floor:>10.3f}s {pass_floor:>10.3f}s"
        )
    mean = {impl: [r for r in results if r["impl"] == impl] for impl in ("esforget", "straightforward")}
    ours, plain = (sum(r["seconds"] for r in mean[i]) / len(mean[i]) for i in ("esforget", "straightforward"))
    ours_mem, plain_mem = (
        sum(r["peak_rss_mib"] - r["baseline_rss_mib"] for r in mean[i]) / len(mean[i])
        for i in ("esforget", "straightforward")
    )
    print(f"ratio straightforward/esforget: time {plain / ours:.2f}×, memory above import {plain_mem / ours_mem:.1f}×")


if __name__ == "__main__":
    main()
