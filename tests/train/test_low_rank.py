"""Low-rank ES (EGGROLL): each matrix's ε is A·Bᵀ/√r from one draw, the update sums the members'
factor products, and members decoded together on shared base weights reply as each alone."""

import math

import pytest
import torch

from esforget.core.models import load_model, load_tokenizer
from esforget.data.sources import build_splits
from esforget.decoding import generation
from esforget.decoding.generation import pad_left
from esforget.train import es
from esforget.train.member_batch import LowRankStack
from esforget.train.noise import Noise, member_seed
from tests.decoding.test_generation import argmax_decode, mixed_length_prompts
from tests.shared import MICRO_COUNTDOWN, qwen_shaped_model, sharp_model
from tests.train.test_es import THREE_ITERATIONS, micro_job


def randn(shape, stream):
    return torch.randn(shape, generator=torch.Generator().manual_seed(stream))


@pytest.mark.parametrize("vectors", ["frozen", "full"])
def test_a_matrix_gets_a_times_b_transposed_over_root_r_and_a_vector_what_was_chosen(vectors):
    params = [torch.zeros(3, 2), torch.zeros(4)]
    eps = dict(Noise(["w", "v"], params, "low_rank", False, rank=2, vectors=vectors).tensors(seed=9))
    draw = randn((2 + 3, 2), member_seed(9, 0, 0))  # B: the first n = 2 rows, A: the last m = 3
    torch.testing.assert_close(eps[0], draw[2:] @ draw[:2].T / math.sqrt(2), rtol=0, atol=1e-7)
    expected_vector = torch.zeros(4) if vectors == "frozen" else randn(4, member_seed(9, 0, 1))
    assert torch.equal(eps[1], expected_vector)


def test_low_rank_noise_has_rank_r_and_unit_variance_per_entry():
    """As full-rank noise: α means the same step size under both."""
    noise = Noise(["w"], [torch.zeros(256, 128)], "low_rank", False, rank=4)
    draws = [dict(noise.tensors(seed))[0] for seed in range(8)]
    assert all(int(torch.linalg.matrix_rank(e)) == 4 for e in draws)
    assert float(torch.stack(draws).square().mean()) == pytest.approx(1.0, abs=0.1)


def low_rank_config(**keys) -> es.ESConfig:
    return es.ESConfig(noise="low_rank", rank=2, **keys)


def test_the_update_sums_each_members_factor_product_and_leaves_frozen_vectors(micro_model_dir):
    weights = es.Weights(load_model(micro_model_dir), "low_rank", low_rank=(2, "frozen"))
    before = [m.clone() for m in weights.theta]
    cfg = low_rank_config(population_size=4, alpha=0.01, mirrored=True)
    members = es.draws(cfg, run_seed=3, iteration=1)
    z = torch.tensor([1.5, -0.5, 2.0, -1.0], dtype=torch.float64)

    weights.update(members, z, cfg.alpha)

    for group in weights.noise.groups:
        j = group.parts[0].index
        if before[j].dim() == 1:
            assert torch.equal(weights.theta[j], before[j])
            continue
        step = torch.zeros_like(before[j])
        for (seed, sign), zi in zip(members, z.tolist(), strict=True):
            a, b = weights.noise.factors(group, seed)
            step += zi * sign * (a @ b.T) / math.sqrt(2)
        torch.testing.assert_close(weights.theta[j], before[j] + cfg.alpha / 4 * step, rtol=0, atol=1e-7)


def logits_alone_and_together(model, weights, members, ids, rank: int, vectors: str):
    """Each member's logits on `ids` with its weights perturbed in place (the reference), and
    all members' from one `LowRankStack` forward on the shared base weights."""
    alone = []
    with torch.no_grad():
        for seed, sign in members:
            weights.perturb(seed, sign, sigma=0.1)
            alone.append(model(input_ids=ids).logits)
        weights.restore()
        stack = LowRankStack(model, len(members), rank, vectors)
        weights.fill(stack, members, sigma=0.1)
        with stack:
            together = model(input_ids=ids.repeat(len(members), 1)).logits
    return alone, together


@pytest.mark.parametrize("vectors", ["frozen", "full"])
def test_members_on_shared_base_weights_give_each_members_own_logits(micro_model_dir, vectors):
    model = load_model(micro_model_dir)
    weights = es.Weights(model, "low_rank", low_rank=(2, vectors))
    members = es.draws(low_rank_config(population_size=3), run_seed=5, iteration=2)
    ids = torch.randint(1, 40, (4, 9), generator=torch.Generator().manual_seed(0))
    alone, together = logits_alone_and_together(model, weights, members, ids, 2, vectors)
    torch.testing.assert_close(together, torch.cat(alone), rtol=0, atol=1e-5)
    assert not torch.allclose(alone[0], alone[1])  # the members do differ
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, load_model(micro_model_dir)(input_ids=ids).logits)


def test_members_on_shared_base_weights_reply_as_each_decoded_alone(micro_model_dir):
    tokenizer = load_tokenizer(micro_model_dir)
    model = sharp_model(micro_model_dir)
    weights = es.Weights(model, "low_rank", low_rank=(4, "full"))
    members = es.draws(low_rank_config(population_size=4, mirrored=True), run_seed=1, iteration=1)
    prompts = mixed_length_prompts(tokenizer, seed=0)
    expected = []
    for seed, sign in members:
        weights.perturb(seed, sign, sigma=0.05)
        expected += [argmax_decode(model, p, 12, []) for p in prompts]
    weights.restore()
    stack = LowRankStack(model, 4, 4, "full")
    weights.fill(stack, members, sigma=0.05)
    with stack:
        decoded = generation.decode(model, pad_left(prompts, tokenizer.pad_token_id).repeat(4), 12, [], members=4)
    assert decoded.replies == expected
    assert len({tuple(r) for r in expected}) > len(prompts)  # members reply differently


def test_a_qwen_shaped_model_with_biases_runs_its_members_on_shared_weights():
    model = qwen_shaped_model()
    assert any(name.endswith("q_proj.bias") for name, _ in model.named_parameters())
    weights = es.Weights(model, "low_rank", low_rank=(2, "full"))
    members = es.draws(low_rank_config(population_size=2, mirrored=True), run_seed=0, iteration=1)
    ids = torch.randint(1, 64, (3, 7), generator=torch.Generator().manual_seed(1))
    alone, together = logits_alone_and_together(model, weights, members, ids, 2, "full")
    torch.testing.assert_close(together, torch.cat(alone), rtol=0, atol=1e-5)


def test_a_low_rank_run_gives_the_same_weights_whether_members_share_a_forward_or_not(micro_model_dir, tmp_path):
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 8, "test": 8}, seed=0)
    runs = {}
    for k in (1, 4):
        # centred ranks: the random micro model's members all score 0, and ranks still move θ
        cfg = low_rank_config(
            population_size=4, mirrored=True, members_per_forward=k, fitness_shaping="rank", **THREE_ITERATIONS
        )
        metrics = es.train(cfg, micro_job(micro_model_dir, data, tmp_path / f"k{k}"))
        runs[k] = (metrics, load_model(tmp_path / f"k{k}" / "checkpoints" / "step000003"))
    assert runs[1][0]["fitness/mean"].to_list() == runs[4][0]["fitness/mean"].to_list()
    for p, q in zip(runs[1][1].parameters(), runs[4][1].parameters(), strict=True):
        assert torch.equal(p, q)
    base = load_model(micro_model_dir)
    moved = [not torch.equal(p, b) for p, b in zip(runs[1][1].parameters(), base.parameters(), strict=True)]
    dims = [p.dim() for p in base.parameters()]
    assert all(m for m, d in zip(moved, dims, strict=True) if d == 2)  # every matrix moved ...
    assert not any(m for m, d in zip(moved, dims, strict=True) if d == 1)  # ... no frozen vector did
