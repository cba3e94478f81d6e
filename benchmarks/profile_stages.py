"""Seconds of a profile's GRPO step and checkpoint evaluation against their floors, on this
machine (the ES iteration has its own benchmark, `benchmarks/es_iteration.py`).

    python benchmarks/profile_stages.py                                    # config/smollm2.yaml
    python benchmarks/profile_stages.py --configfile config/smollm2.yaml --stages evaluation
    python benchmarks/profile_stages.py --stages grpo --compute-dtype float32 bfloat16   # side by side
    python benchmarks/profile_stages.py --stages grpo --ops    # where the time goes, op by op (GRPO only)

The profile's own base (`results/<model>-<tag>/base/model`, prepared by the workflow), its own
tasks (test splits built in memory from the config) and its own GRPO method, in this process
with the profile's thread count:

* `grpo step`: `esforget.train.grpo.train` for two rollouts; the second rollout's optimizer
  step is timed (`perf/seconds`, generation included; the first warms up). Floor: every token
  of the step's sequences (prompt and reply) passes the policy three times in FLOPs (sampling,
  then forward + backward ≈ 1 + 2) and the reference once more where β > 0, at 2 FLOPs per
  matmul weight per token and the measured matmul rate; plus the sampling's decode steps, each
  reading the weights once at the measured bandwidth. With `--compute-dtype`, the step runs once
  per dtype (`GRPOMethodConfig.compute_dtype`), each against the matmul rate of the dtype its
  passes computed in.
* `evaluation`: `esforget.evaluate.retention.evaluate` of the base as a checkpoint on every
  evaluation task and probe. Floor: every decoder pass it makes (counted by a hook, as
  `es_iteration.py` counts them), each max(FLOPs / rate, bytes / bandwidth).

`--ops` runs each stage under `torch.profiler` (which slows it) and prints the share of self CPU
time in matmul and attention kernels, the part the floor counts, and the heaviest ops. It also
records the shape of every matrix product and prints the kernel floor of the profiled run: those
products timed alone, each at its own shape (`es_iteration.kernel_seconds`), beside their
seconds inside the run and the run's own wall-clock seconds (for GRPO the whole two-rollout
run, loading and checkpoint included, not just the timed step). The ordinary floor prices every
FLOP at the rate of one prefill-sized product; the kernel floor prices each product at the rate
its shape gets from this BLAS.

The rates are measured once before the stages (fp32, and bf16 where the CPU has native bf16
kernels) and printed in each row, in the same thread setting, on a product of the model's
width (`es_iteration.machine_rates`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from es_iteration import (  # noqa: E402
    PRODUCT_OPS,
    Passes,
    floor_seconds,
    kernel_seconds,
    machine_rates,
    matrix_products,
    model_shape,
    op_table,
)


def profile(configfile: str) -> dict:
    from esforget.config.load import load

    return load([configfile], Path(__file__).resolve().parents[1])


def splits_of(config: dict, task: str):
    from esforget.data.sources import build_splits

    spec = config["tasks"][task]
    return build_splits(spec["source"], spec["splits"], config["data_seed"])


def base_dir(config: dict) -> Path:
    from esforget.core import layout

    model = config["runs"]["models"][0]
    folder = Path(layout.base_dir(config, model)) / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: prepare the base first (snakemake --until prepare_base_model)")
    return folder


def grpo_step(config: dict, base: Path, threads: int, rates: dict, compute_dtype: str | None = None) -> dict:
    import polars as pl

    from esforget.core.models import chat_prompt_ids, load_model, load_tokenizer
    from esforget.train import grpo
    from esforget.train.grpo_config import GRPOMethodConfig
    from esforget.train.job import TrainingJob

    name = next(m for m in config["runs"]["methods"] if config["methods"][m]["algorithm"] == "grpo")
    task = config["runs"]["tasks"][0]
    spec = config["tasks"][task]
    method = {k: v for k, v in config["methods"][name].items() if k != "algorithm"}
    short = {"rollouts": 2, "checkpoint_every": 2, "validate_every": 2, "validation_size": 1}
    if compute_dtype is not None:
        short["compute_dtype"] = compute_dtype
    cfg = GRPOMethodConfig(**{**method, **short})
    dtype = grpo.computed_in(cfg.compute_dtype, "cpu")
    splits = splits_of(config, task)
    with tempfile.TemporaryDirectory() as scratch:
        job = TrainingJob(base, splits["train"], splits["validation"], spec["scorer"], spec["max_new_tokens"],
                          seed=0, out_dir=Path(scratch), threads=threads)  # fmt: skip
        metrics = grpo.train(cfg, job)
    timed = metrics.filter(pl.col("step") == metrics["step"].max())
    seconds = float(timed["perf/seconds"].item())
    reply = float(timed["completion/mean_length"].item())
    prompt_ids = chat_prompt_ids(load_tokenizer(base), splits["train"]["prompt"].to_list())
    prompt = sum(map(len, prompt_ids)) / len(prompt_ids)
    sequences = cfg.prompts_per_minibatch * cfg.num_generations
    shape = model_shape(load_model(base))
    rate, bandwidth = rates[dtype]
    passes = 3 + (1 if cfg.beta > 0 else 0)
    flops = 2 * shape["matmul_weights"] * sequences * (prompt + reply) * passes
    floor = flops / rate + spec["max_new_tokens"] * shape["weight_bytes"] / bandwidth
    return {"stage": "grpo step", "computed_in": dtype, "seconds": seconds, "sequences": sequences,
            "prompt_tokens": prompt, "reply_tokens": reply, "matmul_gflops": rate / 1e9, "read_gbps": bandwidth / 1e9,
            "floor": floor}  # fmt: skip


def evaluation(config: dict, base: Path, threads: int, rates: dict) -> dict:
    import esforget.evaluate.retention as retention
    from esforget.core.models import load_model

    counted: list[Passes] = []

    def load_counted(path, *args, **kwargs):
        model = load_model(path, *args, **kwargs)
        counted.append(Passes(model))
        return model

    tasks = {}
    for name in config["evaluation"]["tasks"]:
        spec = config["tasks"][name]
        rows = splits_of(config, name)[config["evaluation"]["split"]]
        stops = tuple(spec.get("stop_strings", ()))
        tasks[name] = retention.EvalTask(rows, spec["scorer"], spec["max_new_tokens"], stops, spec["role"] == "prior")
    retention.load_model = load_counted
    try:
        started = time.perf_counter()
        table = retention.evaluate([(0, base)], tasks, {}, config["evaluation"]["batch_size"], base, threads)
        seconds = time.perf_counter() - started
    finally:
        retention.load_model = load_model
    shape = model_shape(load_model(base))
    rate, bandwidth = rates["float32"]
    floor = sum(floor_seconds(p.calls, shape, rate, bandwidth) for p in counted)
    return {"stage": "evaluation", "seconds": seconds, "passes": sum(len(p.calls) for p in counted),
            "rows": table.height, "matmul_gflops": rate / 1e9, "read_gbps": bandwidth / 1e9,
            "floor": floor}  # fmt: skip


def kernel_floor(ops, profiled: float, dtype: str) -> dict:
    """The whole profiled run (for GRPO: loading, both rollouts, the checkpoint) against its
    matrix products, each timed alone at its own shape: their seconds in the run and alone."""
    events = ops.key_averages()
    alone = kernel_seconds(matrix_products(ops.key_averages(group_by_input_shape=True)), getattr(torch, dtype))
    in_run = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS) / 1e6
    return {"profiled_seconds": profiled, "products_in_run_seconds": in_run, "kernel_floor": alone,
            "x_kernel_floor": profiled / alone}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="config/smollm2.yaml")
    parser.add_argument("--stages", nargs="+", default=["grpo", "evaluation"], choices=["grpo", "evaluation"])
    parser.add_argument(
        "--compute-dtype", nargs="+", choices=["auto", "float32", "bfloat16"], help="GRPO: one step per dtype"
    )
    parser.add_argument("--ops", action="store_true", help="profile op by op (slower): the matmul share")
    args = parser.parse_args(argv)
    if args.ops and "evaluation" in args.stages:
        # measured 2026-12-08: the profiler's events of the evaluation's millions of ops
        # outgrew 24 GB of memory and the process was killed
        parser.error("--ops profiles the GRPO step only (--stages grpo): the evaluation's events outgrow memory")
    config = profile(args.configfile)
    threads = config["threads"]["evaluate"]
    torch.set_num_threads(threads)
    base = base_dir(config)
    from esforget.core.models import has_native_bf16, load_model

    # measured before any stage: right after a training run the same product times unevenly
    shape = model_shape(load_model(base))
    dtypes = ["float32"] + (["bfloat16"] if has_native_bf16("cpu") else [])
    rates = {dtype: machine_rates(shape, getattr(torch, dtype)) for dtype in dtypes}
    runs = [(s, d) for s in args.stages for d in (args.compute_dtype or [None] if s == "grpo" else [None])]
    cpu = [torch.profiler.ProfilerActivity.CPU]
    for stage, dtype in runs:
        started = time.perf_counter()
        with torch.profiler.profile(activities=cpu, record_shapes=True) if args.ops else nullcontext() as ops:
            if stage == "grpo":
                row = grpo_step(config, base, threads, rates, dtype)
            else:
                row = evaluation(config, base, threads, rates)
        profiled = time.perf_counter() - started
        row["x_floor"] = row["seconds"] / row["floor"]
        if args.ops:
            row["ops"] = op_table(ops.key_averages())
            row.update(kernel_floor(ops, profiled, row.get("computed_in", "float32")))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
