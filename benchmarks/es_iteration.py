"""Seconds per ES iteration: this project's loop against the loop a first implementation writes.

    python benchmarks/es_iteration.py                    # tiny model and SmolLM2-135M
    python benchmarks/es_iteration.py --models tiny --population 8 --prompts 16

An iteration is N members × (perturb → greedy replies to the iteration's prompts → score →
restore) and one update. Three implementations, each in its own process (so that peak RSS is
its own), on the same weights, prompts and seeds:

* `esforget`: `esforget.es` — prompts tokenised and left-padded once, a hand-written greedy
  loop with KV cache that stops when every row has emitted EOS, noise regenerated per tensor,
  θ kept as an fp32 master copy (exact restores).
* `esforget-in-place`: the same with `numerics="authors"` (fp32 here) and `track_drift=False`:
  perturb and restore in place, one copy of the model, the authors' footprint.
* `naive`: what one writes first — per member, add noise in place, `tokenizer(...)` and
  `model.generate(do_sample=False)` per prompt batch, decode, subtract the same noise. It
  draws the same ε as esforget, so all three score the same perturbed models and generate the
  same replies (the tokens/iteration column shows it): the ratios compare equal work.

Printed per model and implementation: seconds per iteration, members/s, generated tokens/s,
the share of the iteration spent outside generation (perturb, restore, update, scoring) and
peak RSS. The floor of an iteration is the time of its N generations; the overhead share says
how far from it the rest of the loop keeps us.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

MODELS = ("tiny", "smollm2")


def load(name: str):
    """(model, tokenizer, prompt style, max new tokens) of a benchmark model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from esforget import tiny_model
    from esforget.base_model import _smollm2_folder

    if name == "tiny":
        built = sorted(Path("results").glob("tiny-*/base/model"), key=lambda p: p.stat().st_mtime)
        if built:  # the default profile's base (the newest), if the pipeline has run
            from esforget.models import load_model, load_tokenizer

            return load_model(built[-1]), load_tokenizer(built[-1]), "compact", 24
        tokenizer = tiny_model.build_tokenizer()
        arch = {"hidden_size": 96, "intermediate_size": 256, "layers": 3, "heads": 4, "max_positions": 256}
        return tiny_model.build_model(arch, tokenizer, seed=0).eval(), tokenizer, "compact", 24
    folder = _smollm2_folder()
    gguf = next(iter(sorted(p.name for p in folder.glob("*.gguf"))), None)
    if gguf is None:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, "paper", 64


def prompts(style: str, count: int):
    from esforget.tasks.sources import build_splits

    source = {
        "kind": "countdown_generator",
        "count": 3,
        "number_range": [1, 12],
        "ops": ["+", "-"],
        "target_range": [1, 100],
        "prompt_style": style,
    }
    return build_splits(source, {"train": count, "validation": 1, "test": 1}, seed=0)["train"]


def es_config(population: int, numerics: str = "master"):
    """The paper's σ and α: both loops draw and scale the same noise from this config."""
    from esforget import es

    return es.ESConfig(population_size=population, sigma=1e-3, alpha=5e-4, numerics=numerics, track_drift=False)


def run_esforget(
    model, tokenizer, rows, max_new_tokens, population, iterations, batch_size, stops, numerics="master"
) -> dict:
    from esforget import es
    from esforget.scoring import GreedyScorer

    cfg = es_config(population, numerics)
    weights = es.Weights(model, cfg.noise, cfg.numerics, cfg.track_drift)
    scorer = GreedyScorer(tokenizer, rows, "countdown", max_new_tokens, batch_size, stop_strings=stops)
    generating = tokens = 0.0
    started = time.perf_counter()
    for t in range(1, iterations + 1):
        members = es.draws(cfg, 0, t)
        fitness = []
        weights.begin_members()
        for seed, sign in members:
            weights.perturb(seed, sign, cfg.sigma)
            g = time.perf_counter()
            scored = scorer(model)
            generating += time.perf_counter() - g
            tokens += scored.generated_tokens
            fitness.append(scored.mean_reward)
        weights.end_members()
        z = es.shape_fitness(torch.tensor(fitness, dtype=torch.float64), "zscore", cfg.numerics)
        weights.update(members, z, cfg.alpha)
    return {"seconds": time.perf_counter() - started, "generating": generating, "tokens": tokens}


@torch.no_grad()
def run_naive(model, tokenizer, rows, max_new_tokens, population, iterations, batch_size, stops) -> dict:
    from esforget import es
    from esforget.tasks import score_replies

    cfg = es_config(population)
    sigma, alpha = cfg.sigma, cfg.alpha
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in rows["prompt"]
    ]
    tokenizer.padding_side = "left"
    stop_kwargs = {"stop_strings": list(stops), "tokenizer": tokenizer} if stops else {}
    params = list(model.parameters())
    noise = es.Noise([n for n, _ in model.named_parameters()], params, cfg.noise, draw_on_device=False)

    def add_noise(seed: int, scale: float):
        # the same ε as esforget's, so both loops score the same perturbed models and
        # generate the same replies: equal work, a like-for-like ratio
        for index, eps in noise.tensors(seed):
            params[index].add_(eps, alpha=scale)

    generating = tokens = 0.0
    started = time.perf_counter()
    for t in range(1, iterations + 1):
        members = es.draws(cfg, 0, t)
        fitness = []
        for seed, _ in members:
            add_noise(seed, sigma)
            g = time.perf_counter()
            replies = []
            for i in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                )
                out = model.generate(
                    **batch,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **stop_kwargs,
                )
                new = out[:, batch["input_ids"].shape[1] :]
                tokens += int((new != tokenizer.pad_token_id).sum())
                replies += tokenizer.batch_decode(new, skip_special_tokens=True)
            generating += time.perf_counter() - g
            rewards = score_replies("countdown", replies, rows)
            fitness.append(sum(rewards) / len(rewards))
            add_noise(seed, -sigma)
        f = torch.tensor(fitness)
        z = (f - f.mean()) / (f.std() + 1e-8)
        for (seed, _), zi in zip(members, z.tolist(), strict=True):
            add_noise(seed, alpha / population * zi)
    return {"seconds": time.perf_counter() - started, "generating": generating, "tokens": tokens}


def measure(args) -> dict:
    """One (model, implementation) in this process; prints one JSON line."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model, tokenizer, style, max_new_tokens = load(args.model)
    rows = prompts(style, args.prompts)
    run = run_naive
    if args.implementation.startswith("esforget"):
        run = functools.partial(run_esforget, numerics="master" if args.implementation == "esforget" else "authors")
    stops = [args.stop_string] if args.stop_string else []
    run(model, tokenizer, rows, max_new_tokens, 2, 1, args.batch_size, stops)  # warm-up
    result = run(model, tokenizer, rows, max_new_tokens, args.population, args.iterations, args.batch_size, stops)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**result, "peak_rss_mib": peak_mib, "params": sum(p.numel() for p in model.parameters())}


def table(rows: list[dict]) -> str:
    head = (
        "model",
        "implementation",
        "params",
        "s/iteration",
        "members/s",
        "tokens/iteration",
        "tokens/s",
        "outside generation",
        "peak RSS MiB",
    )
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        per_it = r["seconds"] / r["iterations"]
        lines.append(
            " | ".join(
                [
                    r["model"],
                    r["implementation"],
                    f"{r['params'] / 1e6:.2f} M",
                    f"{per_it:.2f}",
                    f"{r['population'] / per_it:.1f}",
                    f"{r['tokens'] / r['iterations']:.0f}",
                    f"{r['tokens'] / r['seconds']:.0f}",
                    f"{1 - r['generating'] / r['seconds']:.1%}",
                    f"{r['peak_rss_mib']:.0f}",
                ]
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--population", type=int, default=8, help="N members per iteration")
    parser.add_argument("--prompts", type=int, default=32, help="training prompts scored per member")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="prompts decoded together")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--stop-string", default="", help='end replies after this string, e.g. "</answer>"')
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--implementation", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model:  # a child: measure one pair
        print(json.dumps(measure(args)))
        return
    results = []
    for model in args.models:
        for implementation in ("esforget", "esforget-in-place", "naive"):
            child = [
                sys.executable,
                __file__,
                "--model",
                model,
                "--implementation",
                implementation,
                *[
                    f"--{k.replace('_', '-')}={getattr(args, k)}"
                    for k in ("population", "prompts", "iterations", "batch_size", "threads", "stop_string")
                ],
            ]
            done = subprocess.run(child, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{model}/{implementation} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(
                {
                    "model": model,
                    "implementation": implementation,
                    "population": args.population,
                    "iterations": args.iterations,
                    **measured,
                }
            )
            print(f"measured {model}/{implementation}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
