"""Whether `torch.compile` pays on this machine for the two passes a real model's stages spend
their time in: a training forward and backward, and greedy decoding.

    python benchmarks/compile_check.py            # SmolLM2's base, as the workflow prepared it
    python benchmarks/compile_check.py --model results/smollm2-135m-<tag>/base/model --repeats 3

Compiling fuses the element-wise work between the matrix products (norms, rotary embeddings,
SiLU gating, the sampling's vocabulary-wide ops) that eager PyTorch runs as separate kernels and
that the floors of `profile_stages.py` and `es_iteration.py` do not count. Printed: seconds of
each call, eager and compiled, and the seconds compilation with the first call took.

* `train pass`: 64 sequences of 60 random tokens, forward (all logits) and the backward of a
  log-likelihood of the last 15 positions, `--threads` threads (GRPO's setting: 2).
* `greedy decode`: `generate` of 64 new tokens for 16 prompts of 45 tokens, one thread (an ES
  member's), with the dynamic cache, the static cache, and the static cache compiled (the
  combination Hugging Face documents for compiled generation).
"""

from __future__ import annotations

import argparse
import glob
import json
import time

import torch


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def train_pass(model, ids: torch.Tensor) -> None:
    logits = model(input_ids=ids).logits
    log_probs = torch.log_softmax(logits[:, -16:-1].float(), dim=-1)
    (-log_probs.gather(-1, ids[:, -15:, None]).mean()).backward()
    model.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoModelForCausalLM

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder (default: the newest prepared SmolLM2 base)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads of the training pass")
    args = parser.parse_args(argv)
    path = args.model or sorted(glob.glob("results/smollm2-*/base/model"))[-1]
    torch.manual_seed(0)
    rows = {}

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).train()
    ids = torch.randint(0, model.config.vocab_size, (64, 60))
    rows["train pass, eager"] = [timed(lambda: train_pass(model, ids)) for _ in range(args.repeats)]
    compiled = torch.compile(model)
    rows["train pass, compile + first call"] = [timed(lambda: train_pass(compiled, ids))]
    rows["train pass, compiled"] = [timed(lambda: train_pass(compiled, ids)) for _ in range(args.repeats)]

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompts = torch.randint(100, model.config.vocab_size - 100, (16, 45))

    def decode(**kwargs) -> None:
        with torch.inference_mode():
            model.generate(
                input_ids=prompts,
                attention_mask=torch.ones_like(prompts),
                max_new_tokens=64,
                min_new_tokens=64,
                do_sample=False,
                **kwargs,
            )

    def static() -> None:
        decode(cache_implementation="static")

    rows["greedy decode, dynamic cache"] = [timed(decode) for _ in range(args.repeats)]
    rows["greedy decode, static cache"] = [timed(static) for _ in range(args.repeats)]
    model.forward = torch.compile(model.forward, dynamic=False)
    rows["greedy decode, static cache, compile + first call"] = [timed(static)]
    rows["greedy decode, static cache, compiled"] = [timed(static) for _ in range(args.repeats)]
    print(f"{path}, {torch.backends.cpu.get_cpu_capability()} kernels")
    for name, seconds in rows.items():
        print(json.dumps({"pass": name, "seconds": [round(s, 2) for s in seconds]}))


if __name__ == "__main__":
    main()
