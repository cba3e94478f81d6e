"""Seconds per ES iteration: this project's loop, with its speed levers, against the loop a
first implementation writes, and against the hardware floor of the work each one does.

    python benchmarks/es_iteration.py                                  # tiny model, 32 prompts
    python benchmarks/es_iteration.py --population 40 --sigma 1.5e-2 --mirrored --members 20 --drafts 20
                                                            # the default profile's ES iteration
    python benchmarks/es_iteration.py --models smollm2 --prompts 8 --population 8
    python benchmarks/es_iteration.py --models tiny --members 1 8 40 --drafts 40

An iteration is N members × (perturb → greedy replies to the iteration's prompts → score) and
one update. Implementations, each in a process of its own (so that peak RSS is its own), on the
same weights, prompts and noise:

* `straightforward`: what one writes first — per member, add noise in place,
  `model.generate(do_sample=False)` per prompt batch, decode, subtract the same noise.
* `K=k`: `esforget.train.es` with `members_per_forward: k` — k members decoded in one batched
  forward (`esforget.train.member_batch`), prompts tokenised and padded once, finished rows dropped.
* `K=k drafts`: the same with `draft_replies: true` — each member verifies the unperturbed
  model's reply in one teacher-forced pass and decodes on only after the first disagreement.
* `K=k low-rank r` (`--low-rank r …`): `noise: low_rank` with `rank: r` (EGGROLL's noise,
  docs/variants.md); for k > 1 the k members share the base weights in one forward
  (`LowRankStack`), so each pass reads the weights once for all of them. Its ε differs from
  the full-rank rows', so its replies may differ in length: the `tokens/iteration` column says
  how far the work was equal (at the paper's σ 1e-3 nearly every member replies as θ does).

All draw the same ε (N independent members as in the paper, or N/2 mirrored pairs with
`--mirrored` as in the default profile), so they score the same perturbed models and, up to
floating-point ties, generate the same replies: the `tokens/iteration` column (reply tokens,
stop tokens excluded) shows whether the work was equal, and a row that differs is marked.

The floor of a row is the time its forward passes need at this machine's measured matmul rate
and memory bandwidth (both measured here, single-threaded like the runs): each pass costs
max(FLOPs / rate, bytes / bandwidth), where FLOPs are 2 × matmul weights × tokens plus the
attention products, and bytes are every member's matmul weights read once per pass (the
shared weights once, in a low-rank pass) plus the KV cache read. A low-rank row's floor leaves
out the members' rank-r products, r(m + n)/(mn) of a matrix's FLOPs (1 % at r = 4 on SmolLM2).
Passes are counted by a hook on the decoder, so a lever that saves passes (drafts) lowers its
own floor; the smallest floor in a model's rows is the one to beat.

With `--ops` each row also runs under `torch.profiler`, which records the shape of every matrix
product it makes (the profiler slows the row a little: its seconds are the profiled ones); the
`× kernel floor` column then divides the row's time by those products' time alone, each timed at
its own shape (`kernel_seconds`). The ordinary floor prices every FLOP at the rate of a
prefill-sized product; a decode step multiplies a few rows by each weight matrix, a shape at
which the BLAS runs well below that rate. The ratio of the two floors is what the shapes cost;
the distance to the kernel floor is the work outside the matrix products.

Every row runs in the environment the default's ES workers get (`esforget.train.launch.WORKER_DEFAULTS`:
transparent huge pages for PyTorch's CPU tensors and glibc's heap kept for reuse; set any of
those variables yourself to measure without).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

from esforget.train.launch import WORKER_DEFAULTS

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
SMOLLM2_CONFIG = DEFAULT_CONFIG.with_name("smollm2.yaml")
MODELS = ("tiny", "smollm2")
SIGMA, ALPHA = 1e-3, 5e-4
"""The paper's σ and α. The tiny model's own σ (1.5e-2, config/config.yaml) is `--sigma`."""


# --- models and prompts ---------------------------------------------------------------------


def load(name: str):
    """(model, tokenizer, prompt style, max new tokens) of a benchmark model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from esforget.base import tiny
    from esforget.base.prepare import _smollm2_folder
    from esforget.base.tiny_config import TinyArchitecture
    from esforget.core.models import load_model, load_tokenizer

    if name == "tiny":  # the default profile's model, prompts and reply length
        default = yaml.safe_load(DEFAULT_CONFIG.read_text())
        countdown = default["tasks"]["countdown"]
        style, max_new_tokens = countdown["source"]["prompt_style"], countdown["max_new_tokens"]
        built = sorted(Path("results").glob("tiny-*/base/model"), key=lambda p: p.stat().st_mtime)
        if built:  # its pretrained base (the newest), if the pipeline has run
            return load_model(built[-1]), load_tokenizer(built[-1]), style, max_new_tokens
        tokenizer = tiny.build_tokenizer()
        arch = TinyArchitecture(**default["models"]["tiny"]["architecture"])
        return tiny.build_model(arch, tokenizer, seed=0).eval(), tokenizer, style, max_new_tokens
    folder = _smollm2_folder()
    gguf = next(iter(sorted(p.name for p in folder.glob("*.gguf"))), None)
    if gguf is None:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    multiply = yaml.safe_load(SMOLLM2_CONFIG.read_text())["tasks"]["multiply"]  # the SmolLM2 profile's new task
    return model, tokenizer, "smollm2", multiply["max_new_tokens"]


def prompts(style: str, count: int):
    """`count` items of the new task: the SmolLM2 profile's (`style` "smollm2"), or the default
    profile's Countdown puzzles asked in `style`."""
    from esforget.data.sources import build_splits

    if style == "smollm2":
        source = yaml.safe_load(SMOLLM2_CONFIG.read_text())["tasks"]["multiply"]["source"]
    else:
        source = {**yaml.safe_load(DEFAULT_CONFIG.read_text())["tasks"]["countdown"]["source"], "prompt_style": style}
    return build_splits(source, {"train": count, "validation": 1, "test": 1}, seed=0)["train"]


def reward_of(rows) -> str:
    """The reward of the items `prompts` built: Countdown's (its items list their numbers) or
    the direct answer's."""
    return "countdown" if "numbers" in json.loads(rows["info"][0]) else "number"


# --- counting the passes, for the floor -------------------------------------------------------


class Passes:
    """Every forward of the decoder: (rows, new tokens per row, keys per row, members whose
    weights it reads)."""

    def __init__(self, model, members=lambda: 1):
        self.calls: list[tuple[int, int, int, int]] = []
        self.members = members
        self.recording = True
        model.get_decoder().register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _module, _args, kwargs):
        if not self.recording:
            return
        ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        keys = ids.shape[1] if mask is None else mask.shape[-1]
        self.calls.append((ids.shape[0], ids.shape[1], keys, self.members()))


def model_shape(model) -> dict:
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    config = model.config
    return {
        "matmul_weights": sum(m.weight.numel() for m in linear),
        "weight_bytes": sum(m.weight.numel() * m.weight.element_size() for m in linear),
        "layers": config.num_hidden_layers,
        "attention_width": config.num_attention_heads * (config.hidden_size // config.num_attention_heads),
        "kv_width": config.num_key_value_heads * (config.hidden_size // config.num_attention_heads),
        "dtype_bytes": next(model.parameters()).element_size(),
    }


def floor_seconds(calls, shape: dict, flops_per_s: float, bytes_per_s: float) -> float:
    """Σ over passes of max(compute time, memory time) at the measured rates."""
    total = 0.0
    for rows, tokens, keys, members in calls:
        flops = (
            2 * shape["matmul_weights"] * rows * tokens
            + 4 * shape["layers"] * shape["attention_width"] * rows * tokens * keys
        )
        kv_bytes = 2 * shape["layers"] * shape["kv_width"] * shape["dtype_bytes"] * rows * keys
        total += max(flops / flops_per_s, (members * shape["weight_bytes"] + kv_bytes) / bytes_per_s)
    return total


def machine_rates(shape: dict, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """(matmul FLOP/s in `dtype` on a prefill-sized product of this model's width, read
    bandwidth B/s): the best of several timings, in this process's thread setting."""
    width = int(round((shape["matmul_weights"] / shape["layers"] / 12) ** 0.5))  # ≈ hidden size
    a, b = torch.randn(512, width, dtype=dtype), torch.randn(width, 4 * width, dtype=dtype)
    for _ in range(3):  # untimed: the first bf16 products run at half the rate of the later ones
        torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(10))
    flops = 2 * 512 * width * 4 * width / best
    big = torch.randn(64 * 2**20)  # 256 MiB, far beyond the caches
    read = min(_timed(big.sum) for _ in range(5))
    return flops, big.numel() * 4 / read


MATMUL_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::addmm_",
    "aten::bmm",
    "aten::baddbmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)
"""The kernels whose FLOPs the floors count (matmuls and attention)."""


def op_table(events, top: int = 15) -> dict:
    """Self CPU seconds: total, in `MATMUL_OPS`, and the `top` heaviest ops with their call counts."""
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / 1e6
    heaviest = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    ops = {e.key: [round(e.self_cpu_time_total / 1e6, 2), e.count] for e in heaviest}
    return {"self_cpu_seconds": total, "matmul_share": matmul / total, "ops_seconds_calls": ops}


PRODUCT_OPS = {"aten::mm": (0, 1), "aten::addmm": (1, 2), "aten::bmm": (0, 1), "aten::baddbmm": (1, 2)}
"""The matrix-product kernels and where their two factors sit among the op's inputs."""


def matrix_products(events) -> Counter:
    """(batch, rows, inner, columns) → calls, of every matrix product in a profile's
    `key_averages(group_by_input_shape=True)` (the profile recorded with `record_shapes=True`)."""
    products: Counter = Counter()
    for event in events:
        if event.key not in PRODUCT_OPS:
            continue
        first, second = (event.input_shapes[i] for i in PRODUCT_OPS[event.key])
        batch = first[0] if len(first) == 3 else 1
        products[(batch, first[-2], first[-1], second[-1])] += event.count
    return products


def kernel_seconds(products: Counter, dtype: torch.dtype = torch.float32) -> float:
    """Σ calls × the seconds of that product alone at its shape (warmed up, the best of
    several): what the matrix products of a run cost at the rate this BLAS reaches for each of
    their shapes, with nothing around them. A decode step's product of 16 rows runs far below
    the rate of the prefill-sized product `machine_rates` times, so this floor is the one that
    separates the shapes' cost from the work outside the kernels."""
    total = 0.0
    for (batch, rows, inner, columns), calls in products.items():
        a = torch.randn(batch, rows, inner, dtype=dtype).squeeze(0)
        b = torch.randn(batch, inner, columns, dtype=dtype).squeeze(0)
        torch.matmul(a, b)
        repeats = max(1, int(0.05 / max(_timed(functools.partial(torch.matmul, a, b)), 1e-6)))  # ≈ 50 ms a timing
        product = functools.partial(_repeated, torch.matmul, a, b, repeats)
        total += calls * min(_timed(product) for _ in range(3)) / repeats
    return total


def _repeated(fn, a, b, times: int) -> None:
    for _ in range(times):
        fn(a, b)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --- the implementations ----------------------------------------------------------------------


def es_config(
    population: int, sigma: float, mirrored: bool, members: int = 1, drafts: bool = False, rank: int | None = None
):
    from esforget.train import es

    return es.ESConfig(
        population_size=population,
        sigma=sigma,
        alpha=ALPHA,
        mirrored=mirrored,
        members_per_forward=members,
        draft_replies=drafts,
        noise="independent" if rank is None else "low_rank",
        rank=rank,
    )


def run_esforget(
    model, tokenizer, rows, max_new_tokens, population, iterations, batch_size, sigma, mirrored, members, drafts, rank
):
    """`esforget.train.es.train`'s iteration, without its checkpoints and validation."""
    from esforget.decoding.greedy_scorer import GreedyScorer
    from esforget.train import es
    from esforget.train.member_batch import LowRankStack, MemberStack

    cfg = es_config(population, sigma, mirrored, members, drafts, rank)
    low_rank = None if rank is None else (rank, cfg.low_rank_vectors)
    weights = es.Weights(model, cfg.noise, cfg.numerics, cfg.track_drift, low_rank=low_rank)
    stack = None
    if members > 1:
        stack = MemberStack(model, members) if rank is None else LowRankStack(model, members, rank, "frozen")
    # weights read per pass: every member's own copy, or once for a low-rank stack's shared base
    readers = 1 if isinstance(stack, LowRankStack) else members
    passes = Passes(model, lambda: readers if stack is not None and stack.active else 1)
    scorer = GreedyScorer(tokenizer, rows, reward_of(rows), max_new_tokens, batch_size)
    generating = tokens = 0.0
    matched = replies = 0  # members' replies equal to θ's, over all replies
    excluded = 0.0  # seconds spent measuring that, left out of the iteration's time
    started = time.perf_counter()
    for t in range(1, iterations + 1):
        g = time.perf_counter()
        draft = scorer.drafts(model) if drafts else None
        generating += time.perf_counter() - g
        if drafts:
            g, passes.recording = time.perf_counter(), False
            own = scorer.score(model)[0].replies
            excluded, passes.recording = excluded + time.perf_counter() - g, True
        members_t = es.draws(cfg, 0, t)
        fitness = []
        for start in range(0, len(members_t), members):
            chunk = members_t[start : start + members]
            if stack is None:
                weights.perturb(*chunk[0], cfg.sigma)
                g = time.perf_counter()
                scored = scorer.score(model, 1, draft)
            else:
                weights.fill(stack, chunk, cfg.sigma)
                g = time.perf_counter()
                with stack:
                    scored = scorer.score(model, len(chunk), draft)
            generating += time.perf_counter() - g
            tokens += sum(s.generated_tokens for s in scored)
            fitness += [s.mean_reward for s in scored]
            if drafts:
                matched += sum(a == b for s in scored for a, b in zip(s.replies, own, strict=True))
                replies += sum(len(s.replies) for s in scored)
        weights.restore()
        z = es.shape_fitness(torch.tensor(fitness, dtype=torch.float64), cfg.fitness_shaping, cfg.numerics)
        weights.update(members_t, z, cfg.alpha)
    seconds = time.perf_counter() - started - excluded
    accepted = matched / replies if replies else None
    return {"seconds": seconds, "generating": generating, "tokens": tokens, "accepted": accepted}, passes


@torch.no_grad()
def run_straightforward(model, tokenizer, rows, max_new_tokens, population, iterations, batch_size, sigma, mirrored):
    from esforget.decoding.greedy_scorer import stop_ids
    from esforget.tasks import score_replies
    from esforget.train import es

    cfg = es_config(population, sigma, mirrored)
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in rows["prompt"]
    ]
    tokenizer.padding_side = "left"
    params = list(model.parameters())
    noise = es.Noise([n for n, _ in model.named_parameters()], params, cfg.noise, draw_on_device=False)
    ends = set(stop_ids(tokenizer, model)) | {tokenizer.pad_token_id}
    passes = Passes(model)

    def add_noise(seed: int, scale: float):
        # the same ε as esforget's, so both loops score the same perturbed models
        for index, eps in noise.tensors(seed):
            params[index].add_(eps, alpha=scale)

    def reply_length(ids: list[int]) -> int:  # tokens before the first stop, as esforget counts
        return next((i for i, token in enumerate(ids) if token in ends), len(ids))

    generating = tokens = 0.0
    started = time.perf_counter()
    for t in range(1, iterations + 1):
        members = es.draws(cfg, 0, t)
        fitness = []
        for seed, sign in members:
            add_noise(seed, sign * sigma)
            g = time.perf_counter()
            replies = []
            for i in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                )
                out = model.generate(
                    **batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
                )
                new = out[:, batch["input_ids"].shape[1] :].tolist()
                tokens += sum(reply_length(ids) for ids in new)
                replies += tokenizer.batch_decode([ids[: reply_length(ids)] for ids in new], skip_special_tokens=True)
            generating += time.perf_counter() - g
            rewards = score_replies(reward_of(rows), replies, rows)
            fitness.append(sum(rewards) / len(rewards))
            add_noise(seed, -sign * sigma)
        z = es.shape_fitness(torch.tensor(fitness, dtype=torch.float64), "zscore")
        for (seed, sign), zi in zip(members, z.tolist(), strict=True):
            add_noise(seed, ALPHA / population * zi * sign)
    return {"seconds": time.perf_counter() - started, "generating": generating, "tokens": tokens}, passes


def measure(args) -> dict:
    """One (model, implementation) in this process; prints one JSON line."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model, tokenizer, style, max_new_tokens = load(args.model)
    rows = prompts(style, args.prompts)
    if args.implementation == "straightforward":
        run = run_straightforward
    else:
        members, mode = args.implementation.split(":")
        rank = int(mode.removeprefix("lowrank")) if mode.startswith("lowrank") else None
        run = functools.partial(run_esforget, members=int(members), drafts=mode == "drafts", rank=rank)
    run(model, tokenizer, rows.head(2), max_new_tokens, 2, 1, args.batch_size, args.sigma, args.mirrored)  # warm-up
    cpu = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=cpu, record_shapes=True) if args.ops else nullcontext() as ops:
        result, passes = run(
            model,
            tokenizer,
            rows,
            max_new_tokens,
            args.population,
            args.iterations,
            args.batch_size,
            args.sigma,
            args.mirrored,
        )
    shape = model_shape(model)
    flops_per_s, bytes_per_s = machine_rates(shape)
    if args.ops:
        result["kernel_floor"] = kernel_seconds(matrix_products(ops.key_averages(group_by_input_shape=True)))
        result["ops"] = op_table(ops.key_averages(), top=10)
    return {
        **result,
        "floor": floor_seconds(passes.calls, shape, flops_per_s, bytes_per_s),
        "passes": len(passes.calls),
        "gflops": flops_per_s / 1e9,
        "gbytes": bytes_per_s / 1e9,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": sum(p.numel() for p in model.parameters()),
    }


# --- the table ------------------------------------------------------------------------------


def label(implementation: str) -> str:
    """`8:drafts` → `K=8 drafts`, `20:lowrank4` → `K=20 low-rank 4`."""
    if implementation == "straightforward":
        return implementation
    members, mode = implementation.split(":")
    return f"K={members}" + {"plain": "", "drafts": " drafts"}.get(mode, f" low-rank {mode.removeprefix('lowrank')}")


def table(rows: list[dict]) -> str:
    head = (
        "model",
        "prompts",
        "implementation",
        "s/iteration",
        "vs straightforward",
        "members/s",
        "tokens/iteration",
        "tokens/s",
        "passes/iteration",
        "replies = θ's",
        "floor s/iteration",
        "× floor",
        "× kernel floor",
        "peak RSS MiB",
    )
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        per_it = r["seconds"] / r["iterations"]
        baseline = next(
            (
                b
                for b in rows
                if (b["model"], b["prompts"], b["implementation"]) == (r["model"], r["prompts"], "straightforward")
            ),
            None,
        )
        speedup = "" if baseline is None else f"{baseline['seconds'] / r['seconds']:.2f}×"
        equal = baseline is None or baseline["tokens"] == r["tokens"]
        lines.append(
            " | ".join(
                [
                    r["model"],
                    str(r["prompts"]),
                    label(r["implementation"]),
                    f"{per_it:.2f}",
                    speedup,
                    f"{r['population'] / per_it:.1f}",
                    f"{r['tokens'] / r['iterations']:,.0f}" + ("" if equal else " (≠)"),
                    f"{r['tokens'] / r['seconds']:,.0f}",
                    f"{r['passes'] / r['iterations']:,.0f}",
                    "" if r.get("accepted") is None else f"{r['accepted']:.0%}",
                    f"{r['floor'] / r['iterations']:.3f}",
                    f"{r['seconds'] / r['floor']:.1f}",
                    f"{r['seconds'] / r['kernel_floor']:.1f}" if "kernel_floor" in r else "",
                    f"{r['peak_rss_mib']:,.0f}",
                ]
            )
        )
    rates = {(r["model"], f"{r['gflops']:.0f} GFLOP/s, {r['gbytes']:.1f} GB/s") for r in rows}
    notes = "; ".join(f"{model}: {rate}" for model, rate in sorted(rates))
    return "\n".join(lines) + f"\n\nmeasured rates (1 process, its threads): {notes}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["tiny"])
    parser.add_argument("--population", type=int, default=8, help="N members per iteration")
    parser.add_argument("--prompts", type=int, default=32, help="training prompts scored per member")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="prompts decoded together (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--sigma", type=float, default=SIGMA, help="noise scale (the paper's 1e-3 by default)")
    parser.add_argument(
        "--mirrored",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="draw N/2 mirrored pairs, as the default profile does (the paper: N independent members)",
    )
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 8], help="values of K")
    parser.add_argument("--drafts", type=int, nargs="*", default=[1, 8], help="values of K run with drafts")
    parser.add_argument(
        "--low-rank", type=int, nargs="*", default=[], help="ranks r run with low-rank noise at each K of --members"
    )
    parser.add_argument(
        "--straightforward",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the straightforward loop too (the speed-up column's baseline)",
    )
    parser.add_argument(
        "--ops",
        action="store_true",
        help="record the run's matrix products (torch.profiler, which slows it) for the kernel floor",
    )
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--implementation", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch_size = args.batch_size or args.prompts
    if args.model:  # a child: measure one pair
        print(json.dumps(measure(args)))
        return
    implementations = (
        ["straightforward"] * args.straightforward
        + [f"{k}:plain" for k in args.members]
        + [f"{k}:lowrank{r}" for k in args.members for r in args.low_rank]
        + [f"{k}:drafts" for k in args.drafts]
    )
    results = []
    for model in args.models:
        for implementation in implementations:
            child = (
                [sys.executable, __file__, "--model", model, "--implementation", implementation]
                + [
                    f"--{k.replace('_', '-')}={getattr(args, k)}"
                    for k in ("population", "prompts", "iterations", "batch_size", "threads", "sigma")
                ]
                + (["--mirrored"] if args.mirrored else [])
                + (["--ops"] if args.ops else [])
            )
            # every row in the environment the default's ES workers get (transparent huge pages)
            done = subprocess.run(child, capture_output=True, text=True, env={**WORKER_DEFAULTS, **os.environ})
            if done.returncode != 0:
                print(f"{model}/{implementation} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(
                {
                    "model": model,
                    "prompts": args.prompts,
                    "implementation": implementation,
                    "population": args.population,
                    "iterations": args.iterations,
                    **measured,
                }
            )
            print(f"measured {model}/{implementation}", file=sys.stderr)
    print(table(results))
    for r in results:
        if "ops" in r:
            print(f"\n{r['model']} {label(r['implementation'])}, op by op: {json.dumps(r['ops'])}")


if __name__ == "__main__":
    main()
