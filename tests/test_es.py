"""The ES update is exactly θ ← θ + (α/N) Σ zᵢ εᵢ, with noise regenerated from seeds."""

import polars as pl
import pytest
import torch

from esforget import es
from esforget.models import load_model
from esforget.weight_diff import diff_checkpoint, summarise


@pytest.mark.parametrize("master_copy", [True, False])
def test_update_matches_the_formula_recomputed_explicitly(micro_model_dir, master_copy):
    model = load_model(micro_model_dir)
    weights = es.Weights(model, noise_mode="independent", master_copy=master_copy)
    before = [m.clone() for m in weights.master]
    cfg = es.ESConfig(population_size=6, alpha=0.01)
    members = es.draws(cfg, run_seed=3, iteration=1)
    z = torch.tensor([1.5, -0.5, 0.0, 2.0, -1.0, -2.0], dtype=torch.float64)

    weights.update(members, z, cfg.alpha)

    for j, (old, new) in enumerate(zip(before, weights.master)):
        eps = torch.stack([sign * es.noise(old.shape, seed, j, "independent") for seed, sign in members])
        expected = old + (cfg.alpha / len(members)) * torch.einsum("i,i...->...", z.float(), eps)
        torch.testing.assert_close(new, expected, rtol=0, atol=1e-7)
    # The model's parameters hold the updated master again (restored, unperturbed).
    for p, m in zip(model.parameters(), weights.master):
        assert torch.equal(p, m)


def test_perturb_then_restore_gives_back_the_exact_weights(micro_model_dir):
    model = load_model(micro_model_dir)
    weights = es.Weights(model, noise_mode="independent")
    original = [p.detach().clone() for p in model.parameters()]
    weights.perturb(seed=123, sign=-1.0, sigma=0.1)
    assert not torch.equal(next(model.parameters()), original[0])
    weights.restore()
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), original))


def test_without_a_master_copy_theta_is_the_model_and_a_restore_is_off_by_at_most_rounding(micro_model_dir):
    model = load_model(micro_model_dir)
    weights = es.Weights(model, noise_mode="independent", master_copy=False)
    assert all(m is p for m, p in zip(weights.master, model.parameters()))  # no second copy
    original = [p.detach().clone() for p in model.parameters()]
    sigma = 0.1
    weights.perturb(seed=123, sign=1.0, sigma=sigma)
    weights.restore()
    for j, (p, o) in enumerate(zip(model.parameters(), original)):
        perturbed = o + sigma * es.noise(o.shape, 123, j, "independent")
        one_step = torch.finfo(torch.float32).eps * (o.abs() + perturbed.abs())  # (o + σε) − σε rounds twice
        assert bool(((p - o).abs() <= one_step).all())


def test_noise_streams():
    shape = torch.Size([4, 4])
    # Regenerated noise is identical; distinct tensors get distinct streams ...
    assert torch.equal(es.noise(shape, 9, 0, "independent"), es.noise(shape, 9, 0, "independent"))
    assert not torch.equal(es.noise(shape, 9, 0, "independent"), es.noise(shape, 9, 1, "independent"))
    # ... except in the authors' scheme, where equally shaped tensors share the member's noise.
    assert torch.equal(es.noise(shape, 9, 0, "paper"), es.noise(shape, 9, 1, "paper"))


def test_mirrored_members_come_in_opposite_pairs():
    members = es.draws(es.ESConfig(population_size=4, mirrored=True), run_seed=0, iteration=5)
    assert [sign for _, sign in members] == [1.0, -1.0, 1.0, -1.0]
    assert members[0][0] == members[1][0] != members[2][0]


def test_fitness_shaping():
    f = torch.tensor([0.0, 1.0, 2.0, 5.0], dtype=torch.float64)
    z = es.shape_fitness(f, "zscore")
    assert float(z.mean()) == pytest.approx(0) and float(z.std(unbiased=False)) == pytest.approx(1)
    assert es.shape_fitness(torch.ones(4, dtype=torch.float64), "zscore").abs().sum() == 0
    assert es.shape_fitness(f, "rank").tolist() == [-0.5, -0.5 + 1 / 3, -0.5 + 2 / 3, 0.5]


def test_bad_config_is_refused_with_the_value():
    with pytest.raises(ValueError, match="population_size, got 5"):
        es.ESConfig(population_size=5, mirrored=True)
    with pytest.raises(ValueError, match="'median'"):
        es.ESConfig(fitness_shaping="median")
    with pytest.raises(ValueError, match="master_copy=False with dtype='bfloat16'"):
        es.ESConfig(master_copy=False, dtype="bfloat16")


def test_training_is_deterministic_and_moves_the_weights(micro_model_dir, tmp_path):
    from esforget.tasks.sources import build_splits

    source = {"kind": "countdown_generator", "count": 3, "number_range": [1, 9], "ops": ["+", "*"],
              "target_range": [1, 100], "prompt_style": "compact"}
    data = build_splits(source, {"train": 16, "validation": 8, "test": 8}, seed=0)
    cfg = es.ESConfig(iterations=3, population_size=4, sigma=0.5, alpha=0.05, checkpoint_every=3,
                      validate_every=3, prompts_per_iteration=8)
    runs = []
    for name in ("a", "b"):
        metrics = es.train(cfg, micro_model_dir, data["train"], data["validation"], "countdown", 8, seed=1,
                           out_dir=tmp_path / name)
        runs.append((metrics, load_model(tmp_path / name / "checkpoints" / "step000003")))
    (m1, model1), (m2, model2) = runs
    assert m1.drop("perf/seconds").equals(m2.drop("perf/seconds"))
    assert all(torch.equal(p, q) for p, q in zip(model1.parameters(), model2.parameters()))
    base = load_model(micro_model_dir)
    # ‖θ_t − θ_0‖ logged during training is the norm the weight analysis finds afterwards.
    analysed = summarise(diff_checkpoint(micro_model_dir, tmp_path / "a" / "checkpoints" / "step000003", []), [])
    assert m1["update/total_norm"][-1] == pytest.approx(analysed["fro_norm"], rel=1e-5)
    assert m1["update/total_norm"][-1] > 0
    assert any(not torch.equal(p, q) for p, q in zip(model1.parameters(), base.parameters()))
    assert m1.columns[:4] == ["step", "fitness/mean", "fitness/std", "fitness/max"]
    assert m1.height == 3 and isinstance(m1, pl.DataFrame)
