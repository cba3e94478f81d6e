"""`numerics: authors` computes what the authors' vLLM ES run computed, bit for bit.

The reference below is a straight re-implementation of their loop
(`countdown_run_vllm_template.py` + `utils/worker_extn.py`), written from their code and not
from ours: the model is held as vLLM holds it (q/k/v fused into qkv_proj, gate/up into
gate_up_proj, embedding rows padded to 64), every tensor is perturbed with
`p.add_(sign * scale * noise)` from a generator seeded with the member seed, restored with
`p.add_(-SIGMA * noise)`, the fitnesses z-scored in float32 numpy, and the update applied member
by member with `perturb_self_weights(seed, coeff)`; engine 0 updates and broadcasts.
"""

import random

import numpy as np
import polars as pl
import pytest
import torch

from esforget.core.files import write_parquet
from esforget.core.models import load_model, load_tokenizer
from esforget.data.sources import build_splits
from esforget.decoding.greedy_scorer import GreedyScorer
from esforget.train import launch
from tests.shared import MICRO_COUNTDOWN
from tests.train.specs import launch_spec

# σ is not a power of two, so σ·ε rounds (as 1e-3 does in the paper) and the order of roundings shows.
ITERATIONS, POPULATION, SIGMA, ALPHA, SEED = 2, 4, 0.3, 0.05, 33


def vllm_parameters(model) -> dict[str, torch.Tensor]:
    """The model's parameters laid out as vLLM's Llama holds them (copies)."""
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    fused = {}
    for name, tensor in state.items():
        if ".q_proj." in name:
            fused[name.replace("q_proj", "qkv_proj")] = torch.cat(
                [tensor, state[name.replace("q_proj", "k_proj")], state[name.replace("q_proj", "v_proj")]]
            )
        elif ".gate_proj." in name:
            fused[name.replace("gate_proj", "gate_up_proj")] = torch.cat(
                [tensor, state[name.replace("gate_proj", "up_proj")]]
            )
        elif "embed_tokens" in name:
            rows = -(-tensor.shape[0] // 64) * 64
            fused[name] = torch.cat(
                [tensor, torch.zeros(rows - tensor.shape[0], *tensor.shape[1:], dtype=tensor.dtype)]
            )
        elif not any(part in name for part in (".k_proj.", ".v_proj.", ".up_proj.")):
            fused[name] = tensor
    return fused


FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def load_into(model, fused: dict[str, torch.Tensor]) -> None:
    """Copy vLLM-layout parameters back into the Hugging Face model (what generation sees)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            source, offset = fused.get(name), 0
            for whole, parts in FUSED.items():
                for k, part in enumerate(parts):
                    if f".{part}." in name:
                        source = fused[name.replace(part, whole)]
                        offset = sum(params[name.replace(part, other)].shape[0] for other in parts[:k])
            p.copy_(source[offset : offset + p.shape[0]])


def perturb_self_weights(params: dict[str, torch.Tensor], seed: int, noise_scale: float, negate: bool = False):
    scale = float(noise_scale)
    sign = -1.0 if negate else 1.0
    for p in params.values():
        gen = torch.Generator(device=p.device)
        gen.manual_seed(int(seed))
        noise = torch.randn(p.shape, dtype=p.dtype, device=p.device, generator=gen)
        p.data.add_(sign * scale * noise)


def restore_self_weights(params: dict[str, torch.Tensor], seed: int, sigma: float):
    for p in params.values():
        gen = torch.Generator(device=p.device)
        gen.manual_seed(int(seed))
        noise = torch.randn(p.shape, dtype=p.dtype, device=p.device, generator=gen)
        p.data.add_(-float(sigma) * noise)


def authors_loop(model, score, engines: int) -> dict[str, torch.Tensor]:
    """Their ES loop on `engines` model copies; members go to engines round robin (their
    engines take the next seed when free, which is timing-dependent)."""
    copies = [vllm_parameters(model) for _ in range(engines)]
    random.seed(SEED)
    for _ in range(ITERATIONS):
        seeds = [random.randint(0, 1_000_000) for _ in range(POPULATION)]
        rewards = []
        for i, seed in enumerate(seeds):
            params = copies[i % engines]
            perturb_self_weights(params, seed, SIGMA, False)
            load_into(model, params)
            rewards.append(float(np.mean(score(model).rewards)))
            restore_self_weights(params, seed, SIGMA)
        avg_rewards = np.asarray(rewards, dtype=np.float32)
        zscores = (avg_rewards - float(avg_rewards.mean())) / (float(avg_rewards.std()) + 1e-8)
        coeffs = (ALPHA / POPULATION) * zscores
        for seed, coeff in zip(seeds, coeffs, strict=True):
            perturb_self_weights(copies[0], int(seed), float(coeff), False)
        for other in copies[1:]:  # broadcast_all_weights(0)
            for name, p in other.items():
                p.copy_(copies[0][name])
    return copies[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("authors")
    splits = build_splits(MICRO_COUNTDOWN, {"train": 8, "validation": 4, "test": 4}, seed=0)
    for split in ("train", "validation"):
        write_parquet(splits[split], root / f"{split}.parquet")
    return root, splits


def job(micro_model_dir, data_dir, dtype, out):
    method = {
        "algorithm": "es",
        "iterations": ITERATIONS,
        "population_size": POPULATION,
        "sigma": SIGMA,
        "alpha": ALPHA,
        "noise": "authors",
        "numerics": "authors",
        "dtype": dtype,
        "checkpoint_every": ITERATIONS,
        "validate_every": ITERATIONS,
    }
    return {
        **launch_spec(method, micro_model_dir, data_dir, "countdown", max_new_tokens=8, seed=SEED),
        "out_dir": str(out),
    }


def reference(micro_model_dir, splits, dtype, engines):
    model = load_model(micro_model_dir, dtype)
    score = GreedyScorer(load_tokenizer(micro_model_dir), splits["train"], "countdown", 8, batch_size=64)
    load_into(model, authors_loop(model, score, engines))
    return [p.detach() for p in model.parameters()]


def trained(out):
    metrics = pl.read_parquet(out / "metrics.parquet")
    model = load_model(out / "checkpoints" / f"step{ITERATIONS:06d}", metrics_dtype(out))
    return metrics, [p.detach() for p in model.parameters()]


def metrics_dtype(out):
    import json

    return json.loads((out / "run_config.json").read_text())["dtype"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_one_process_is_bit_identical_to_the_authors_loop(micro_model_dir, data, tmp_path, dtype):
    data_dir, splits = data
    launch.train(job(micro_model_dir, data_dir, dtype, tmp_path / "run"))
    metrics, weights = trained(tmp_path / "run")

    expected = reference(micro_model_dir, splits, dtype, engines=1)
    assert all(torch.equal(p, q) for p, q in zip(weights, expected, strict=True))
    # Not vacuous: the members scored differently, the update moved the weights, and the
    # in-place restores left a drift that the metrics report.
    assert metrics["fitness/std"].max() > 0
    base = [p.detach() for p in load_model(micro_model_dir, dtype).parameters()]
    assert any(not torch.equal(p, q) for p, q in zip(weights, base, strict=True))
    assert (metrics["drift/step_norm"] > 0).all() and metrics["drift/total_norm"][-1] > 0


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_processes_are_the_authors_two_engines_with_engine_0_broadcasting(micro_model_dir, data, tmp_path):
    data_dir, splits = data
    launch.run(job(micro_model_dir, data_dir, "float16", tmp_path / "two"), processes=2)
    _, weights = trained(tmp_path / "two")

    two_engines = reference(micro_model_dir, splits, "float16", engines=2)
    assert all(torch.equal(p, q) for p, q in zip(weights, two_engines, strict=True))
    # Engine 1's restore drift was discarded: one process (the authors' one engine, by the
    # test above) ends elsewhere.
    launch.run(job(micro_model_dir, data_dir, "float16", tmp_path / "one"), processes=1)
    _, one_process = trained(tmp_path / "one")
    assert not all(torch.equal(p, q) for p, q in zip(weights, one_process, strict=True))
