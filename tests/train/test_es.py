"""The ES update is exactly θ ← θ + (α/N) Σ zᵢ εᵢ, with noise regenerated from seeds."""

import dataclasses
import itertools
import math
import random
import statistics

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from esforget.analyze.weight_diff import diff_checkpoint, summarise
from esforget.core.files import read_json
from esforget.core.models import device_name, load_model, load_tokenizer
from esforget.data.sources import build_splits
from esforget.decoding.greedy_scorer import GreedyScorer
from esforget.train import es
from esforget.train.finite import NonFiniteTraining
from esforget.train.job import TrainingJob
from esforget.train.member_batch import MemberStack
from tests.shared import MICRO_COUNTDOWN


@pytest.mark.parametrize("mirrored", [False, True])
def test_update_matches_the_formula_recomputed_explicitly(micro_model_dir, mirrored):
    """Mirrored pairs draw their ε once for both members: each still counts with its own sign and z."""
    model = load_model(micro_model_dir)
    weights = es.Weights(model, noise_mode="independent", numerics="master")
    before = [m.clone() for m in weights.theta]
    cfg = es.ESConfig(population_size=6, alpha=0.01, mirrored=mirrored)
    members = es.draws(cfg, run_seed=3, iteration=1)
    z = torch.tensor([1.5, -0.5, 0.0, 2.0, -1.0, -2.0], dtype=torch.float64)

    weights.update(members, z, cfg.alpha)

    for j, (old, new) in enumerate(zip(before, weights.theta, strict=True)):
        eps = torch.stack([sign * dict(weights.noise.tensors(seed))[j] for seed, sign in members])
        expected = old + (cfg.alpha / len(members)) * torch.einsum("i,i...->...", z.float(), eps)
        torch.testing.assert_close(new, expected, rtol=0, atol=1e-7)
    # The model's parameters hold the updated master again (restored, unperturbed).
    for p, m in zip(model.parameters(), weights.theta, strict=True):
        assert torch.equal(p, m)


def test_a_filled_stack_holds_each_members_perturbed_weights_bit_for_bit(micro_model_dir):
    """A mirrored pair's ε is drawn once for both of its slots; a chunk of members may start or
    end in the middle of a pair."""
    model = load_model(micro_model_dir)
    weights = es.Weights(model, noise_mode="independent", numerics="master")
    members = es.draws(es.ESConfig(population_size=6, mirrored=True), run_seed=0, iteration=1)
    chunk = members[1:5]  # the second half of a pair, a whole pair, the first half of a pair
    stack = MemberStack(model, len(chunk))

    weights.fill(stack, chunk, sigma=0.1)

    assert stack.members == len(chunk)
    for slot, (seed, sign) in enumerate(chunk):
        weights.perturb(seed, sign, sigma=0.1)
        assert all(torch.equal(s[slot], p) for s, p in zip(stack.stacks, model.parameters(), strict=True)), slot
    weights.restore()
    assert all(torch.equal(p, m) for p, m in zip(model.parameters(), weights.theta, strict=True))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_with_a_master_copy_a_restore_gives_back_the_exact_weights(micro_model_dir, dtype):
    model = load_model(micro_model_dir, dtype)
    weights = es.Weights(model, noise_mode="authors", numerics="master")
    original = [p.detach().clone() for p in model.parameters()]
    weights.begin_members()
    weights.perturb(seed=123, sign=-1.0, sigma=0.1)
    assert not torch.equal(next(model.parameters()), original[0])
    assert weights.end_members() == (0.0, 0.0)
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), original, strict=True))


def test_in_place_restores_drift_by_rounding_and_the_drift_is_measured(micro_model_dir):
    model = load_model(micro_model_dir, "float16")
    weights = es.Weights(model, noise_mode="authors", numerics="authors")
    assert all(m is p for m, p in zip(weights.theta, model.parameters(), strict=True))  # no second copy
    original = [p.detach().float().clone() for p in model.parameters()]
    weights.begin_members()
    weights.perturb(seed=123, sign=1.0, sigma=0.1)
    step, total = weights.end_members()
    pairs = zip(model.parameters(), original, strict=True)
    moved = math.sqrt(sum(float((p.detach().float() - o).square().sum()) for p, o in pairs))
    assert step == total == pytest.approx(moved, rel=1e-6)
    # fp16 around |w + σε| ≈ 0.1 rounds in steps of ~6e-5: some weights do not come back ...
    assert step > 0
    # ... but none is off by more than a rounding step of the perturbed value, twice.
    for p, o in zip(model.parameters(), original, strict=True):
        assert float((p.float() - o).abs().max()) <= 2 * 2.0**-11 * (o.abs().max() + 0.1 * 6)


def test_paper_noise_is_the_draw_of_the_authors_vllm_model():
    """q/k/v and gate/up get consecutive row blocks of one draw each (vLLM's fused qkv_proj and
    gate_up_proj), the embedding the first rows of a draw padded to 64 rows, every draw seeded
    with the member seed; independent noise gives each tensor its own stream."""
    names = [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
    ]
    shapes = [(70, 8), (8, 8), (4, 8), (4, 8), (8, 8), (16, 8), (16, 8), (8, 16), (8,), (8,)]
    params = [torch.zeros(s) for s in shapes]
    eps = dict(es.Noise(names, params, "authors", draw_on_device=False).tensors(seed=5))

    def randn(*shape):
        return torch.randn(shape, generator=torch.Generator().manual_seed(5))

    assert torch.equal(eps[0], randn(128, 8)[:70])
    assert torch.equal(torch.cat([eps[1], eps[2], eps[3]]), randn(16, 8))
    assert torch.equal(eps[4], randn(8, 8))  # o_proj: equal in shape to q_proj, but q_proj is fused
    assert torch.equal(torch.cat([eps[5], eps[6]]), randn(32, 8))
    assert torch.equal(eps[8], eps[9])  # equally shaped tensors share the member's noise

    independent = dict(es.Noise(names, params, "independent", draw_on_device=False).tensors(seed=5))
    assert not torch.equal(independent[8], independent[9])
    assert torch.equal(independent[8], dict(es.Noise(names, params, "independent", draw_on_device=False).tensors(5))[8])


def test_the_authors_member_seeds_are_their_stream():
    cfg = es.ESConfig(population_size=30, noise="authors")
    stream = random.Random(33)  # random.seed(33), then randint(0, 10**6) per member, per iteration
    for iteration in (1, 2, 3):
        expected = [stream.randint(0, 1_000_000) for _ in range(30)]
        assert [seed for seed, _ in es.draws(cfg, run_seed=33, iteration=iteration)] == expected


def test_authors_zscores_are_float32_with_std_plus_1e_8():
    z = es.shape_fitness(torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.float64), "zscore", "authors")
    assert z.tolist() == [
        float(np.float32(-1 / (np.float32(np.sqrt(0.5)) + 1e-8))),
        0.0,
        0.0,
        float(np.float32(1 / (np.float32(np.sqrt(0.5)) + 1e-8))),
    ]
    assert es.shape_fitness(torch.ones(4, dtype=torch.float64), "zscore", "authors").abs().sum() == 0


def test_mirrored_members_come_in_opposite_pairs():
    members = es.draws(es.ESConfig(population_size=4, mirrored=True), run_seed=0, iteration=5)
    assert [sign for _, sign in members] == [1.0, -1.0, 1.0, -1.0]
    assert members[0][0] == members[1][0] != members[2][0]


REWARDS = st.lists(st.integers(0, 110).map(lambda k: k / 100), min_size=2, max_size=40)
"""Fitnesses as ES sees them: mean rewards of a member over its prompts, 0 to 1.1 (Countdown's
format bonus), on a grid of 0.01 (a member's mean over up to 100 prompts of 0/0.1/1 rewards)."""


@given(REWARDS)
@example([0.09, 0.09, 0.09])  # found by Hypothesis: torch's std of these is 1e-17, not 0, and z was ±1
def test_zscores_are_the_population_standard_scores_and_keep_the_members_order(fitness):
    f = torch.tensor(fitness, dtype=torch.float64)
    z = es.shape_fitness(f, "zscore").tolist()
    spread = statistics.pstdev(fitness)  # the population std, as the authors' np.std
    if spread == 0:
        assert z == [0.0] * len(fitness)  # nobody better than anybody: no update
        return
    mean = statistics.fmean(fitness)
    assert z == pytest.approx([(x - mean) / spread for x in fitness], abs=1e-9)
    for (fi, zi), (fj, zj) in itertools.combinations(zip(fitness, z, strict=True), 2):
        assert (fi < fj) == (zi < zj) and (fi == fj) == (zi == zj)  # better members weigh more


@given(st.lists(st.integers(0, 10**6), min_size=2, max_size=40, unique=True))
def test_centred_ranks_count_the_members_below_whatever_their_order(fitness):
    ranks = es.shape_fitness(torch.tensor(fitness, dtype=torch.float64), "rank").tolist()
    n = len(fitness)
    below = [sum(other < mine for other in fitness) for mine in fitness]
    assert ranks == pytest.approx([b / (n - 1) - 0.5 for b in below], abs=1e-12)


@given(REWARDS.filter(lambda f: len(set(f)) > 1))
def test_authors_zscores_agree_with_exact_ones_to_float32_precision(fitness):
    f = torch.tensor(fitness, dtype=torch.float64)
    exact = es.shape_fitness(f, "zscore")
    assert es.shape_fitness(f, "zscore", "authors").tolist() == pytest.approx(exact.tolist(), rel=1e-4, abs=1e-4)


class Vector(torch.nn.Module):
    """θ of a problem whose fitness is linear, F(θ) = g·θ: each step must climb along g."""

    def __init__(self, dim: int):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(dim))


@pytest.mark.parametrize("numerics", ["master", "authors"])
@pytest.mark.parametrize("shaping", ["zscore", "rank"])
@pytest.mark.parametrize("mirrored", [False, True])
def test_every_update_climbs_a_linear_fitness(numerics, shaping, mirrored):
    """Fᵢ = g·(θ + σεᵢ), so Σ zᵢ g·εᵢ = Σ zᵢ (Fᵢ − F̄)/σ > 0 for any shaping that keeps the
    members' order and sums to zero: every update, from any seed, raises F. A sign error,
    a member paired with another's noise or a lost member's contribution breaks it."""
    cfg = es.ESConfig(population_size=8, sigma=0.1, alpha=0.05, fitness_shaping=shaping, mirrored=mirrored)
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(64, generator=generator)
    model = Vector(64)
    weights = es.Weights(model, noise_mode="independent", numerics=numerics)
    for t in range(1, 21):
        members = es.draws(cfg, run_seed=5, iteration=t)
        fitness = []
        for seed, sign in members:
            weights.perturb(seed, sign, cfg.sigma)
            fitness.append(float(g @ model.theta.detach()))
        weights.restore()
        before = float(g @ model.theta.detach())
        z = es.shape_fitness(torch.tensor(fitness, dtype=torch.float64), shaping, numerics)
        step = weights.update(members, z, cfg.alpha)
        assert float(g @ model.theta.detach()) > before, f"iteration {t} moved against the fitness"
        assert step > 0
    # and after 20 steps θ points along g, far beyond what noise alone would give (cos ~ 0.1)
    assert float(torch.nn.functional.cosine_similarity(model.theta.detach(), g, dim=0)) > 0.5


def test_members_draw_distinct_noise_within_and_across_iterations():
    cfg = es.ESConfig(population_size=30)
    first, second = es.draws(cfg, run_seed=0, iteration=1), es.draws(cfg, run_seed=0, iteration=2)
    assert len({seed for seed, _ in first + second}) == 60
    assert es.draws(cfg, run_seed=0, iteration=1) == first  # regenerated, never stored
    assert es.draws(cfg, run_seed=1, iteration=1) != first


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"population_size": 5, "mirrored": True}, "mirrored=True needs an even population_size, got 5"),
        ({"fitness_shaping": "median"}, "fitness_shaping='median': must be one of 'zscore', 'rank'"),
        ({"noise": "shared"}, "noise='shared': must be one of 'independent', 'authors'"),
        ({"numerics": "vllm"}, "numerics='vllm': must be one of 'master', 'authors'"),
        ({"numerics": "authors", "save_master": True}, "save_master=True with numerics='authors'"),
        ({"dtype": "float8"}, "dtype='float8': must be one of 'float32', 'bfloat16', 'float16'"),
        ({"population_size": 1}, "population_size=1: must be ≥ 2"),
        ({"checkpoint_every": 0}, "checkpoint_every=0: must be ≥ 1"),
        ({"validate_every": 0}, "validate_every=0: must be ≥ 1"),
        ({"members_per_forward": 0}, "members_per_forward=0: must be ≥ 1"),
        # the list of what a dry run used to accept
        ({"sigma": 0}, "sigma=0: must be > 0"),
        ({"sigma": -0.3}, "sigma=-0.3: must be > 0"),
        ({"alpha": -1e-3}, "alpha=-0.001: must be > 0"),
        ({"iterations": 0}, "iterations=0: must be ≥ 1"),
        ({"prompts_per_iteration": 0}, "prompts_per_iteration=0: must be ≥ 1"),
        ({"generation_batch_size": 0}, "generation_batch_size=0: must be ≥ 1"),
        ({"validation_size": -1}, "validation_size=-1: must be ≥ 1"),
    ],
)
def test_bad_config_is_refused_naming_the_value(keys, message):
    with pytest.raises(ValueError, match=message):
        es.ESConfig(**keys)


def test_the_smallest_valid_values_are_accepted():
    cfg = es.ESConfig(population_size=2, checkpoint_every=1, validate_every=1)
    assert len(es.draws(cfg, run_seed=0, iteration=1)) == 2  # a population of two: shaping needs no more


THREE_ITERATIONS = {
    "iterations": 3,
    "sigma": 0.5,  # large enough that the random micro model's members reply differently
    "alpha": 0.05,
    "checkpoint_every": 3,
    "validate_every": 3,
    "prompts_per_iteration": 8,
}


def micro_job(base_dir, data: dict, out_dir) -> TrainingJob:
    """Countdown replies of up to 8 tokens from the micro model, seed 1."""
    return TrainingJob(base_dir, data["train"], data["validation"], "countdown", 8, seed=1, out_dir=out_dir)


def test_training_is_deterministic_and_moves_the_weights(micro_model_dir, tmp_path):
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 8, "test": 8}, seed=0)
    cfg = es.ESConfig(population_size=4, **THREE_ITERATIONS)
    runs = []
    for name in ("a", "b"):
        metrics = es.train(cfg, micro_job(micro_model_dir, data, tmp_path / name))
        runs.append((metrics, load_model(tmp_path / name / "checkpoints" / "step000003")))
    (m1, model1), (m2, model2) = runs
    assert m1.drop("perf/seconds").equals(m2.drop("perf/seconds"))
    assert all(torch.equal(p, q) for p, q in zip(model1.parameters(), model2.parameters(), strict=True))
    base = load_model(micro_model_dir)
    # ‖θ_t − θ_0‖ logged during training is the norm the weight analysis finds afterwards.
    analysed = summarise(diff_checkpoint(micro_model_dir, tmp_path / "a" / "checkpoints" / "step000003", []), [])
    assert m1["update/total_norm"][-1] == pytest.approx(analysed["fro_norm"], rel=1e-5)
    assert m1["update/total_norm"][-1] > 0
    assert any(not torch.equal(p, q) for p, q in zip(model1.parameters(), base.parameters(), strict=True))
    assert m1.columns[:4] == ["step", "fitness/mean", "fitness/std", "fitness/max"]
    assert (m1["perf/generated_tokens"] > 0).all()  # the members' tokens, for throughput
    assert m1["step"].to_list() == [1, 2, 3]
    recorded = read_json(tmp_path / "a" / "run_config.json")  # what defines the run, and where it ran
    assert (recorded["algorithm"], recorded["seed"], recorded["base"]) == ("es", 1, str(micro_model_dir))
    assert {k: recorded[k] for k in THREE_ITERATIONS} == THREE_ITERATIONS
    assert recorded["device"] == device_name("cpu")
    assert recorded["computed_in"] == recorded["dtype"] == "float32"  # the members decode in θ's dtype


def test_each_iteration_draws_a_fresh_sorted_batch_of_distinct_prompts():
    batches = [es.prompt_batch(seed=3, iteration=t, available=50, k=8) for t in range(1, 21)]
    assert all(b == sorted(set(b)) and len(b) == 8 and b[0] >= 0 and b[-1] < 50 for b in batches)
    assert len({tuple(b) for b in batches}) == 20  # a new batch every iteration ...
    assert batches[0] == es.prompt_batch(seed=3, iteration=1, available=50, k=8)  # ... regenerated from the seed
    assert batches[0] != es.prompt_batch(seed=4, iteration=1, available=50, k=8)
    # pinned: a later version of the code must draw the same prompts, or the same config no
    # longer gives the same run
    assert batches[0] == [13, 14, 16, 19, 30, 32, 46, 49]


def test_the_configured_fitness_shaping_shapes_every_update(micro_model_dir, tmp_path, monkeypatch):
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 2, "test": 1}, seed=0)
    shaped = []

    def recorded(fitness, mode, numerics="master"):
        shaped.append(mode)
        return shape_fitness(fitness, mode, numerics)

    shape_fitness = es.shape_fitness
    monkeypatch.setattr(es, "shape_fitness", recorded)
    es.train(
        es.ESConfig(population_size=4, **THREE_ITERATIONS, fitness_shaping="rank"),
        micro_job(micro_model_dir, data, tmp_path),
    )
    assert shaped == ["rank"] * 3


def test_without_draft_replies_no_drafts_are_decoded(micro_model_dir, tmp_path, monkeypatch):
    """Drafts cost a decode of every prompt per iteration: only `draft_replies` pays it."""

    def refused(self, model):
        raise AssertionError("drafts decoded with draft_replies off")

    monkeypatch.setattr(GreedyScorer, "drafts", refused)
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 2, "test": 1}, seed=0)
    metrics = es.train(es.ESConfig(population_size=2, **THREE_ITERATIONS), micro_job(micro_model_dir, data, tmp_path))
    assert metrics["step"].to_list() == [1, 2, 3]


def test_validation_runs_every_validate_every_iterations_and_at_the_end(micro_model_dir, tmp_path):
    data = build_splits(MICRO_COUNTDOWN, {"train": 8, "validation": 2, "test": 1}, seed=0)
    cfg = es.ESConfig(iterations=5, population_size=2, sigma=0.5, checkpoint_every=5, validate_every=2)
    metrics = es.train(
        cfg, TrainingJob(micro_model_dir, data["train"], data["validation"], "countdown", 4, 0, tmp_path / "run")
    )
    assert metrics.filter(pl.col("val/accuracy").is_not_null())["step"].to_list() == [2, 4, 5]


def test_drift_tracking_can_be_switched_off_for_the_authors_footprint(micro_model_dir, tmp_path):
    model = load_model(micro_model_dir, "float16")
    weights = es.Weights(model, noise_mode="authors", numerics="authors", track_drift=False)
    assert weights.drift is None
    weights.begin_members()
    weights.perturb(seed=123, sign=1.0, sigma=0.1)
    assert weights.end_members() == (None, None)
    # a run that tracks none still logs the drift columns, empty, as numbers
    data = build_splits(MICRO_COUNTDOWN, {"train": 8, "validation": 2, "test": 1}, seed=0)
    untracked = {"numerics": "authors", "dtype": "float16", "track_drift": False}
    metrics = es.train(
        es.ESConfig(population_size=2, **THREE_ITERATIONS, **untracked), micro_job(micro_model_dir, data, tmp_path)
    )
    assert metrics.schema["drift/step_norm"] == metrics.schema["drift/total_norm"] == pl.Float64
    assert metrics["drift/total_norm"].is_null().all()


@pytest.mark.parametrize("numerics, dtype", [("master", "float32"), ("authors", "float16")])
def test_members_per_forward_and_verified_drafts_change_no_fitness_and_no_weight(
    micro_model_dir, tmp_path, numerics, dtype
):
    """Speed levers, not methods: K = 4 members per forward (6 members: a group of 4, then one of
    2) and verified drafts give the fitnesses and weights of one member at a time, bit for bit,
    under both numerics (the authors' in-place restores drift in the same order)."""
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 8, "test": 8}, seed=0)
    levers = {
        "one": {},
        "four": {"members_per_forward": 4},
        "drafts": {"members_per_forward": 4, "draft_replies": True},
    }
    runs = {}
    for name, lever in levers.items():
        cfg = es.ESConfig(population_size=6, numerics=numerics, dtype=dtype, **THREE_ITERATIONS, **lever)
        metrics = es.train(cfg, micro_job(micro_model_dir, data, tmp_path / name))
        weights = [p.detach() for p in load_model(tmp_path / name / "checkpoints" / "step000003", dtype).parameters()]
        runs[name] = (metrics.drop("perf/seconds"), weights)
    one_metrics, one_weights = runs.pop("one")
    assert one_metrics["fitness/std"].max() > 0  # members replied differently
    for name, (metrics, weights) in runs.items():
        assert metrics.equals(one_metrics), name
        assert all(torch.equal(p, q) for p, q in zip(weights, one_weights, strict=True)), name


def test_validation_scores_only_the_first_validation_size_items(micro_model_dir, tmp_path):
    """The accuracy logged is the checkpoint's on the first `validation_size` items alone; items
    past them are never scored: here they are unscorable (no numbers), so scoring one would fail
    the run."""
    data = build_splits(MICRO_COUNTDOWN, {"train": 8, "validation": 6, "test": 1}, seed=0)
    unscorable = pl.Series(["{}"] * 3, dtype=pl.String)
    validation = data["validation"].with_columns(info=pl.concat([data["validation"]["info"].head(3), unscorable]))
    cfg = es.ESConfig(
        iterations=1, population_size=2, sigma=0.5, checkpoint_every=1, validate_every=1, validation_size=3
    )
    job = TrainingJob(micro_model_dir, data["train"], validation, "countdown", 4, seed=0, out_dir=tmp_path / "run")
    metrics = es.train(cfg, job)
    checkpoint = tmp_path / "run" / "checkpoints" / "step000001"
    first_three = GreedyScorer(load_tokenizer(checkpoint), validation.head(3), "countdown", 4, batch_size=64)
    assert metrics["val/accuracy"].to_list() == [first_three(load_model(checkpoint)).accuracy]
    whole_split = dataclasses.replace(cfg, validation_size=None)
    with pytest.raises(KeyError):
        es.train(whole_split, dataclasses.replace(job, out_dir=tmp_path / "b"))


def test_an_update_that_overflows_stops_the_run_naming_the_iteration_and_publishes_nothing(micro_model_dir, tmp_path):
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 8, "test": 8}, seed=0)
    # α = 1e38: θ += (α/N) Σ zᵢεᵢ leaves fp32's range at the first update whose fitnesses differ
    cfg = es.ESConfig(population_size=4, **{**THREE_ITERATIONS, "alpha": 1e38})
    refused = r"ES iteration \d \(alpha=1e\+38, sigma=0.5\): not finite: update/step_norm=inf"
    with pytest.raises(NonFiniteTraining, match=refused):
        es.train(cfg, micro_job(micro_model_dir, data, tmp_path / "run"))
    assert nothing_published(tmp_path / "run")


def test_a_non_finite_fitness_stops_the_run_before_its_update(micro_model_dir, tmp_path, monkeypatch):
    data = build_splits(MICRO_COUNTDOWN, {"train": 16, "validation": 8, "test": 8}, seed=0)
    score, calls = GreedyScorer.score, itertools.count()

    def one_nan(self, model, members=1, drafts=None):  # the first member's rewards came back NaN
        scored = score(self, model, members, drafts)
        if next(calls) == 0:
            scored[0] = dataclasses.replace(scored[0], rewards=[float("nan")] * len(scored[0].rewards))
        return scored

    monkeypatch.setattr(GreedyScorer, "score", one_nan)
    cfg = es.ESConfig(population_size=4, **THREE_ITERATIONS)
    with pytest.raises(NonFiniteTraining, match=r"ES iteration 1: not finite: fitness=\[nan, .*\] \(entries \[0\]\)"):
        es.train(cfg, micro_job(micro_model_dir, data, tmp_path / "run"))
    assert nothing_published(tmp_path / "run")


def nothing_published(out) -> bool:
    """No checkpoint, no metrics, no run_config.json: only the work folder a rerun starts over in."""
    return not out.exists() or (
        {p.name for p in out.iterdir()} <= {"partial"} and not (out / "partial" / "checkpoints").exists()
    )
