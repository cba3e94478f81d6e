"""ES variants against their formulas, on hand-worked numbers: anchored weight decay (L1, L2), a
radius around θ₀, a capped step, and sparse masks; then all of them in one training run."""

import dataclasses
import math

import pytest
import torch
from safetensors.torch import save_file

from esforget.core.models import load_model
from esforget.data.sources import build_splits
from esforget.train import es
from esforget.train.anchor import Anchor
from esforget.train.job import ReplayTask
from esforget.train.noise import sparse_masks
from tests.shared import MICRO_COUNTDOWN
from tests.train.test_es import THREE_ITERATIONS, micro_job


def one_tensor(theta, anchor, tmp_path, dtype=torch.float32, numerics="master"):
    """Weights holding θ = `theta` in a one-matrix model, and an Anchor holding θ₀ = `anchor`."""
    model = torch.nn.Linear(2, 1, bias=False).to(dtype)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([theta]))
    save_file({"weight": torch.tensor([anchor])}, str(tmp_path / "base.safetensors"))
    weights = es.Weights(model, "independent", numerics)
    return model, weights, Anchor({"weight": tmp_path / "base.safetensors"}, dtype)


# θ = θ₀ + (0.5, −0.1) and αλ = 0.2
THETA, THETA0, STEP = [1.5, 1.9], [1.0, 2.0], 0.2


def test_l2_decay_shrinks_the_difference_from_the_base_by_one_minus_alpha_lambda(tmp_path):
    model, weights, anchor = one_tensor(THETA, THETA0, tmp_path)
    weights.decay_toward(anchor, "l2", STEP)
    # θ₀ + 0.8 · (0.5, −0.1)
    torch.testing.assert_close(weights.theta[0], torch.tensor([[1.4, 1.92]]), rtol=0, atol=1e-7)
    assert torch.equal(model.weight, weights.theta[0])  # the model holds θ again


def test_l1_decay_soft_thresholds_the_difference_and_zeroes_what_is_below_the_step(tmp_path):
    _, weights, anchor = one_tensor(THETA, THETA0, tmp_path)
    weights.decay_toward(anchor, "l1", STEP)
    # (0.5 − 0.2, 0): −0.1 is within the threshold and goes back to θ₀ exactly
    torch.testing.assert_close(weights.theta[0], torch.tensor([[1.3, 2.0]]), rtol=0, atol=1e-7)
    assert float(weights.theta[0][0, 1]) == 2.0


def test_under_the_authors_numerics_the_decay_is_in_place_in_the_models_dtype(tmp_path):
    model, weights, anchor = one_tensor(THETA, THETA0, tmp_path, torch.float16, "authors")
    weights.decay_toward(anchor, "l2", STEP)
    assert weights.theta[0] is model.weight and model.weight.dtype == torch.float16
    torch.testing.assert_close(model.weight.float(), torch.tensor([[1.4, 1.92]]), rtol=0, atol=2e-3)


def test_a_radius_projects_theta_onto_the_ball_around_the_base(tmp_path):
    _, weights, anchor = one_tensor([3.0, 4.0], [0.0, 0.0], tmp_path)  # ‖θ − θ₀‖ = 5
    weights.keep_within(anchor, 10.0)
    assert weights.theta[0].tolist() == [[3.0, 4.0]]  # inside: untouched
    weights.keep_within(anchor, 2.5)
    torch.testing.assert_close(weights.theta[0], torch.tensor([[1.5, 2.0]]), rtol=0, atol=1e-7)
    assert weights.distance_from(anchor) == pytest.approx(2.5)


def test_a_capped_step_keeps_the_uncapped_direction_at_the_capped_length(micro_model_dir):
    cfg = es.ESConfig(population_size=6, alpha=0.01)
    members = es.draws(cfg, run_seed=3, iteration=1)
    z = torch.tensor([1.5, -0.5, 0.0, 2.0, -1.0, -2.0], dtype=torch.float64)
    steps = {}
    for cap in (None, 1e-4, 1e6):
        weights = es.Weights(load_model(micro_model_dir), "independent")
        before = torch.cat([m.flatten().clone() for m in weights.theta])
        norm = weights.update(members, z, cfg.alpha, cap)
        steps[cap] = (torch.cat([m.flatten() for m in weights.theta]) - before, norm)
    free, free_norm = steps[None]
    capped, capped_norm = steps[1e-4]
    assert free_norm > 1e-4  # the cap binds ...
    assert capped_norm == pytest.approx(1e-4, rel=1e-6)
    assert float(capped.norm()) == pytest.approx(1e-4, rel=1e-3)
    assert float(torch.nn.functional.cosine_similarity(capped, free, dim=0)) == pytest.approx(1.0, abs=1e-4)
    assert torch.equal(steps[1e6][0], free) and steps[1e6][1] == free_norm  # ... a loose cap changes nothing


def test_the_authors_numerics_refuse_a_capped_step(micro_model_dir):
    weights = es.Weights(load_model(micro_model_dir), "independent", "authors")
    members = es.draws(es.ESConfig(population_size=2), run_seed=0, iteration=1)
    with pytest.raises(ValueError, match="a capped step needs numerics 'master'"):
        weights.update(members, torch.tensor([1.0, -1.0], dtype=torch.float64), 0.01, cap=1.0)


def test_a_sparse_mask_holds_exactly_its_share_of_each_tensor_fixed_by_the_run_seed():
    params = [torch.zeros(10, 10), torch.zeros(7), torch.zeros(3)]
    masks = sparse_masks(params, 0.25, run_seed=4)
    assert [int(m.sum()) for m in masks] == [25, 2, 1]  # round(0.25 × 100), round(1.75), round(0.75)
    assert all(m.dtype == torch.bool and m.shape == p.shape for m, p in zip(masks, params, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(masks, sparse_masks(params, 0.25, run_seed=4), strict=True))
    assert not torch.equal(masks[0], sparse_masks(params, 0.25, run_seed=5)[0])
    assert all(bool(m.all()) for m in sparse_masks(params, 1.0, run_seed=4))


@pytest.mark.parametrize("numerics", ["master", "authors"])
def test_sparse_es_perturbs_and_moves_only_the_masked_entries(micro_model_dir, numerics):
    model = load_model(micro_model_dir)
    weights = es.Weights(model, "independent", numerics, sparse=(0.1, 7))
    masks = weights.noise.masks
    start = [p.detach().clone() for p in model.parameters()]
    weights.perturb(seed=11, sign=1.0, sigma=0.1)
    for p, s, m in zip(model.parameters(), start, masks, strict=True):
        assert torch.equal(p[~m], s[~m])  # outside the mask: θ exactly
        assert bool((p[m] != s[m]).any()) or m.sum() == 0
    members = es.draws(es.ESConfig(population_size=4), run_seed=2, iteration=1)
    weights.update(members, torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=torch.float64), 0.05)
    for p, s, m in zip(model.parameters(), start, masks, strict=True):
        assert torch.equal(p[~m], s[~m])


def test_a_run_with_every_variant_stays_on_its_masks_and_within_its_radius(micro_model_dir, tmp_path):
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 8, "test": 8}, seed=0)
    radius = 0.05
    cfg = es.ESConfig(
        population_size=4,
        **THREE_ITERATIONS,
        sparse_share=0.5,
        step_cap=0.04,
        anchor_decay="l2",
        anchor_lambda=2.0,
        radius=radius,
    )
    metrics = es.train(cfg, micro_job(micro_model_dir, data, tmp_path / "run"))
    assert (metrics["update/step_norm"] <= 0.04 * (1 + 1e-6)).all()
    assert (metrics["update/total_norm"] <= radius * (1 + 1e-6)).all()
    trained = load_model(tmp_path / "run" / "checkpoints" / "step000003")
    base = load_model(micro_model_dir)
    masks = sparse_masks(list(base.parameters()), 0.5, run_seed=1)  # the job's seed
    moved = 0.0
    for p, b, m in zip(trained.parameters(), base.parameters(), masks, strict=True):
        assert torch.equal(p[~m], b[~m])
        moved += float((p - b).detach().square().sum())
    assert math.sqrt(moved) == pytest.approx(metrics["update/total_norm"][-1], rel=1e-5)


def test_replay_adds_lambda_times_the_mean_of_the_replayed_tasks_rewards():
    rewards = torch.tensor([[0.5, 0.0, 0.25], [1.0, 0.5, 0.0], [0.0, 0.5, 0.0]], dtype=torch.float64)
    # new task + 0.4 × mean(prior 1, prior 2): 0.5 + 0.4·0.5, 0 + 0.4·0.5, 0.25 + 0
    torch.testing.assert_close(es.with_replay(rewards, 0.4), torch.tensor([0.7, 0.2, 0.25], dtype=torch.float64))
    assert torch.equal(es.with_replay(rewards[:1], 0.4), rewards[0])  # nothing replayed


ARITH = {"kind": "arith_choice_generator", "operand_range": [1, 9], "ops": ["+"], "instruction": ""}


def test_a_run_with_replay_climbs_the_new_tasks_reward_plus_lambda_times_the_prior_tasks(micro_model_dir, tmp_path):
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 8, "test": 8}, seed=0)
    prior = build_splits(ARITH, {"train": 32, "validation": 2, "test": 2}, seed=0)
    job = dataclasses.replace(
        micro_job(micro_model_dir, data, tmp_path / "run"),
        replay=(ReplayTask("arith", prior["train"], "choice", 8),),
    )
    cfg = es.ESConfig(
        population_size=6, replay_tasks=["arith"], replay_lambda=0.5, replay_prompts=8, **THREE_ITERATIONS
    )
    metrics = es.train(cfg, job)
    assert metrics["replay/arith"].max() > 0  # the random micro model names the right option now and then
    expected = metrics["fitness/new_task"] + 0.5 * metrics["replay/arith"]  # means over members are linear
    assert metrics["fitness/mean"].to_list() == pytest.approx(expected.to_list(), abs=1e-12)
    batches = [es.prompt_batch(1, t, 32, 8, stream=-2) for t in (1, 2, 3)]
    assert batches[0] != batches[1] and batches[0] != es.prompt_batch(1, 1, 32, 8)  # its own stream
