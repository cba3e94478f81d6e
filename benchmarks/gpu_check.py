"""The paper profile's GPU path in one short run, without the hub: does each stage run on the
paper's model shapes, how fast against the bf16 FLOP floor, and in how much GPU memory?

    python benchmarks/gpu_check.py              # on one GPU: ≤ 8 minutes on an H100
    python benchmarks/gpu_check.py --tiny       # on a CPU, tiny shapes (CI runs this, so it cannot rot)

For each model shape — Qwen2.5-1.5B-Instruct's and Llama-3.2-1B-Instruct's published configs,
random weights (the hub is not needed, and timing does not depend on the values) — it saves the
model as a base directory and runs the project's own code on it, as the workflow does:

* ES (`esforget.train.es`) for a few iterations, twice: the authors' numerics (weights in fp16,
  perturbed and restored in place) and the master copy (bf16 weights, fp32 master);
* GRPO (`esforget.train.grpo`, TRL's trainer) for one rollout, where TRL is installed;
* the retention evaluation (`esforget.evaluate.retention`) of the ES checkpoint on every probe:
  generative, log-likelihood (acc, acc_norm) and the KL divergence from the base.

Prompts are the default profile's Countdown puzzles and sums asked through the tiny character
tokenizer's chat template, so the model reads real prompt lengths; random weights never stop
early, so every reply runs to `--max-new-tokens` (the worst case). Printed per stage: seconds,
reply tokens per second, the ratio of the time to its FLOP floor — 2 × parameters × (prompt +
reply tokens) at the bf16 matmul rate measured here, a floor decoding (memory-bound) cannot
reach — and the peak GPU memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {
    "qwen2.5-1.5b": {
        "class": "Qwen2Config",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
    "llama-3.2-1b": {
        "class": "LlamaConfig",
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
    },
}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512, "head_dim": 16}  # fmt: skip


ES_VARIANTS = (("es_authors_fp16", "authors", "float16"), ("es_master_bf16", "master", "bfloat16"))
"""(label, numerics, dtype): the authors' in-place fp16 arithmetic, and the exact master copy."""


def build_base(name: str, tiny: bool, folder: Path) -> int:
    """Save a randomly initialised model of `name`'s shape, with the tiny character tokenizer;
    return its parameter count."""
    import transformers

    from esforget.base import tiny as tiny_model
    from esforget.core.models import save_model

    settings = {k: v for k, v in SHAPES[name].items() if k != "class"}
    if tiny:
        settings = {**settings, **TINY, "rope_scaling": settings.get("rope_scaling")}
    tokenizer = tiny_model.build_tokenizer()
    config = getattr(transformers, SHAPES[name]["class"])(
        **settings, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    save_model(model, tokenizer, folder)
    return sum(p.numel() for p in model.parameters())


def matmul_rate(device: str, size: int) -> float:
    """bf16 matmul FLOP/s here (fp32 on a CPU without bf16 kernels would be slower still: the
    floor is the best case)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    best = float("inf")
    for _ in range(5):
        _sync(device)
        started = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def workload(args):
    """(Countdown train/validation rows, prior-task rows) of the default profile's generators."""
    from esforget.data.sources import build_splits

    countdown = {"kind": "countdown_generator", "count": 3, "number_range": [1, 12], "ops": ["+", "-"],
                 "target_range": [1, 100], "prompt_style": "compact"}  # fmt: skip
    sums = {"kind": "arith_choice_generator", "operand_range": [1, 9], "ops": ["+"], "instruction": ""}
    new = build_splits(countdown, {"train": args.prompts, "validation": args.prompts, "test": args.prompts}, 0)
    prior = build_splits(sums, {"train": 1, "validation": 1, "test": args.prompts}, 0)
    return new, prior


def prompt_tokens(base: Path, rows) -> int:
    from esforget.core.models import chat_prompt_ids, load_tokenizer

    return sum(len(ids) for ids in chat_prompt_ids(load_tokenizer(base), rows["prompt"].to_list()))


def es_stage(args, base: Path, out: Path, new, numerics: str, dtype: str) -> dict:
    from esforget.train import es
    from esforget.train.job import TrainingJob

    cfg = es.ESConfig(
        iterations=args.iterations,
        population_size=args.population,
        sigma=1e-3,
        alpha=5e-4,
        dtype=dtype,
        numerics=numerics,
        track_drift=False,
        checkpoint_every=args.iterations,
        validate_every=args.iterations + 1,  # no validation: the iteration alone is timed
        generation_batch_size=args.prompts,
    )
    job = TrainingJob(base, new["train"], new["validation"], "countdown", args.max_new_tokens, seed=0, out_dir=out)
    metrics = es.train(cfg, job)
    seconds = metrics["perf/seconds"].to_list()[1:] or metrics["perf/seconds"].to_list()  # the first warms up
    tokens = metrics["perf/generated_tokens"].to_list()[-1]
    return {"seconds": sum(seconds) / len(seconds), "reply_tokens": tokens, "members": args.population}


def grpo_stage(args, base: Path, out: Path, new) -> dict | None:
    if importlib.util.find_spec("trl") is None:
        return None
    from esforget.train import grpo
    from esforget.train.grpo_config import GRPOMethodConfig
    from esforget.train.job import TrainingJob

    cfg = GRPOMethodConfig(
        rollouts=1,
        prompts_per_rollout=args.grpo_prompts,
        prompts_per_minibatch=args.grpo_prompts,
        num_generations=args.grpo_generations,
        micro_batch_size=args.grpo_prompts * args.grpo_generations,
        checkpoint_every=1,
        validate_every=1,
        validation_size=args.grpo_prompts,
    )
    job = TrainingJob(base, new["train"], new["validation"], "countdown", args.max_new_tokens, seed=0, out_dir=out)
    started = time.perf_counter()
    metrics = grpo.train(cfg, job)
    return {"seconds": time.perf_counter() - started, "step_seconds": metrics["perf/seconds"].to_list()[0]}


def evaluation_stage(args, base: Path, checkpoint: Path, new, prior) -> dict:
    from esforget.evaluate.retention import EvalTask, evaluate

    tasks = {
        "countdown": EvalTask(new["test"], "countdown", args.max_new_tokens),
        "arith": EvalTask(prior["test"], "choice", 10, prior=True),
    }
    started = time.perf_counter()
    table = evaluate([(args.iterations, checkpoint)], tasks, {}, args.prompts, base, threads=args.threads)
    return {"seconds": time.perf_counter() - started, "probes": sorted(set(table["probe"]))}


def check(args) -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    rate = matmul_rate(device, 256 if args.tiny else 8192)
    new, prior = workload(args)
    rows = []
    for name in args.models:
        with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
            root = Path(scratch)
            params = build_base(name, args.tiny, root / "base")
            prompts = prompt_tokens(root / "base", new["train"])
            line = {"model": name, "parameters": params, "device": _device_name(device), "bf16_tflops": rate / 1e12}
            for label, numerics, dtype in ES_VARIANTS:
                _peak_reset(device)
                es_run = es_stage(args, root / "base", root / label, new, numerics, dtype)
                flops = 2 * params * (prompts + es_run["reply_tokens"] / args.population) * args.population
                line[label] = {
                    "s_per_iteration": es_run["seconds"],
                    "reply_tokens_per_s": es_run["reply_tokens"] / es_run["seconds"],
                    "x_flop_floor": es_run["seconds"] / (flops / rate),
                    "peak_gib": _peak_gib(device),
                }
            _peak_reset(device)
            grpo_run = grpo_stage(args, root / "base", root / "grpo", new)
            line["grpo"] = (
                "skipped: TRL is not installed" if grpo_run is None else {**grpo_run, "peak_gib": _peak_gib(device)}
            )
            _peak_reset(device)
            checkpoint = root / "es_master_bf16" / "checkpoints" / f"step{args.iterations:06d}"
            line["evaluation"] = {
                **evaluation_stage(args, root / "base", checkpoint, new, prior),
                "peak_gib": _peak_gib(device),
            }
            print(json.dumps(line), flush=True)
            rows.append(line)
    return rows


def _device_name(device: str) -> str:
    from esforget.core.models import device_name

    return device_name(device)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, for a CPU (CI)")
    parser.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--iterations", type=int, default=3, help="ES iterations per numerics (the first warms up)")
    parser.add_argument("--population", type=int, default=30, help="ES members (the paper: 30)")
    parser.add_argument("--prompts", type=int, default=32, help="prompts per ES iteration and per evaluated task")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--grpo-prompts", type=int, default=8)
    parser.add_argument("--grpo-generations", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--workdir", default=None, help="where the bases are written (default: the system's temp)")
    return check(parser.parse_args(argv))


if __name__ == "__main__":
    main()
