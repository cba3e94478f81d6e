"""The hyper-parameters of one ES method (`config.methods.<name>` with `algorithm: es`), apart
from the trainer (`esforget.train.es`) so that checking a config does not load it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from esforget.core.dtype_names import DTYPE_NAMES
from esforget.core.typed_settings import Above, AtLeast, OneOf, check_declared


@dataclass
class ESConfig:
    """Hyper-parameters of one ES method (`config.methods.<name>` with `algorithm: es`)."""

    iterations: Annotated[int, AtLeast(1)] = 500
    """Number of ES updates (the authors: 500)."""
    population_size: Annotated[int, AtLeast(2)] = 30
    """N, perturbed models scored per iteration (the authors: 30). Even when `mirrored`."""
    sigma: Annotated[float, Above(0)] = 1e-3
    """σ, standard deviation of the parameter noise (the authors: 1e-3)."""
    alpha: Annotated[float, Above(0)] = 5e-4
    """α, learning rate of the update θ += (α/N) Σ zᵢ εᵢ (the authors: 5e-4)."""
    fitness_shaping: Annotated[str, OneOf("zscore", "rank")] = "zscore"
    """`zscore` (the authors') or `rank` (centred ranks in [-0.5, 0.5])."""
    mirrored: bool = False
    """Antithetic pairs (+ε, −ε) instead of N independent draws. The authors: off."""
    noise: Annotated[str, OneOf("independent", "authors", "low_rank")] = "independent"
    """`independent`: a distinct stream per member and tensor; `authors`: the authors' draws
    (member seeds from Python's `random`, every tensor of their vLLM model seeded with the
    member seed, q/k/v and gate/up fused; see `esforget.train.noise`); `low_rank`: EGGROLL's
    (arXiv 2511.16652): each matrix gets ε = A·Bᵀ/√r of rank `rank`, from independent streams."""
    rank: Annotated[int, AtLeast(1)] | None = None
    """r of `noise: low_rank` (required with it, refused without)."""
    low_rank_vectors: Annotated[str, OneOf("frozen", "full")] = "frozen"
    """What 1-D tensors (norms, biases) get under `noise: low_rank`: `frozen` (no noise, never
    updated, as in EGGROLL's LLM runs) or `full` (full-rank noise, as every tensor otherwise)."""
    prompts_per_iteration: Annotated[int, AtLeast(1)] | None = None
    """Fresh random batch of k training prompts each iteration; null = the full set (the authors)."""
    dtype: Annotated[str, OneOf(*DTYPE_NAMES)] = "float32"
    """Precision of the weights being perturbed: float32, bfloat16 or float16 (the authors: fp16)."""
    numerics: Annotated[str, OneOf("master", "authors")] = "master"
    """`master`: θ is a separate fp32 master copy; restores are exact, updates accumulate in
    fp32 whatever `dtype`, runs are bit-identical across process counts and resumes; costs one
    more fp32 copy of the parameters. `authors`: the authors' in-place arithmetic in `dtype`
    (module docstring): one copy of the model, restores that may drift by a rounding step, an
    update rounded member by member; results depend on the process count."""
    save_master: bool = False
    """Also store the fp32 master beside each checkpoint (`<checkpoint>/master/`), so that the
    weight analysis can compare ΔW before and after storage rounding. `numerics: master` only."""
    track_drift: bool = True
    """Under `numerics: authors`, measure how far the in-place restores moved θ (metrics
    `drift/*`). Costs host memory: a copy of θ in its dtype and the summed drift in fp32; False
    keeps the authors' footprint (one model and one noise tensor) and logs no drift."""
    checkpoint_every: Annotated[int, AtLeast(1)] = 50
    """Save a checkpoint every k iterations (and at the end). The authors: 50."""
    validate_every: Annotated[int, AtLeast(1)] = 10
    """Greedy validation accuracy every m iterations. The authors: 10."""
    validation_size: Annotated[int, AtLeast(1)] | None = None
    """Validation items scored at each validation; null = the whole split."""
    generation_batch_size: Annotated[int, AtLeast(1)] = 64
    """Prompts decoded together (per member: a forward of K members holds K times as many rows)."""
    members_per_forward: Annotated[int, AtLeast(1)] = 1
    """K, members decoded together in one batched forward (`esforget.train.member_batch`): the batch
    is K × prompts rows, and memory holds K more copies of the model. Replies equal those of
    K = 1 up to floating-point ties. Pays where a decode step is overhead-bound (a small model
    on CPU, eager decoding on a GPU); not on a large model on CPU, where each member still
    reads its own weights (docs/es_throughput.md). The authors: 1 (one member per vLLM call)."""
    draft_replies: bool = False
    """Verify each member's reply against the unperturbed model's greedy reply in one
    teacher-forced pass and decode on only after the first disagreement
    (`esforget.decoding.generation`). Costs one unperturbed generation per iteration; pays where
    members mostly reply as θ does (small σ) and a decode step is memory-bound."""
    step_cap: Annotated[float, Above(0)] | None = None
    """Bounded ES: each iteration's whole update ‖Δθ‖_F is scaled down to at most this; null =
    unbounded. Holds the step of every tensor until its norm is known (one more fp32 copy of
    θ). `numerics: master` only: the authors' update is N rounded additions, never one step."""
    anchor_decay: Annotated[str, OneOf("none", "l1", "l2")] = "none"
    """Anchored weight decay (AWD; arXiv 2605.30148, code `kschweig/es-awd`) after each update:
    `l2`: θ ← θ₀ + (1 − αλ)(θ − θ₀); `l1`: θ − θ₀ soft-thresholded by αλ; λ = `anchor_lambda`.
    Under `numerics: authors` in place in `dtype`, as their code does it."""
    anchor_lambda: Annotated[float, AtLeast(0)] = 0.0
    """λ of `anchor_decay` (their recommendation: 10 for l2, 0.01 for l1, with α = 5e-4)."""
    radius: Annotated[float, Above(0)] | None = None
    """Constrained ES: after each update (and decay), θ is projected onto the ball
    ‖θ − θ₀‖_F ≤ radius around the base; null = unconstrained."""
    sparse_share: Annotated[float, Above(0, 1)] | None = None
    """Sparse ES: each tensor has a fixed random mask of this share of its entries (drawn once
    from the run seed, exactly round(share × size) entries); members are perturbed and θ moves
    only there, the rest stays at θ₀. Costs a boolean per parameter. null = every entry."""
    replay_tasks: list[str] = field(default_factory=list)
    """Replay (the study's future work): prior tasks (config `tasks`, `role: prior`, scored from
    a reply) whose training prompts join every member's fitness, so that ES sees what it
    forgets: Fᵢ = new-task reward + `replay_lambda` × the mean over these tasks of the member's
    reward on `replay_prompts` of each task's train split, drawn afresh each iteration. Empty:
    no replay. The prior task's test split, which evaluation scores, is never replayed."""
    replay_lambda: Annotated[float, AtLeast(0)] = 0.0
    """λ of replay (> 0 with `replay_tasks`, 0 without)."""
    replay_prompts: Annotated[int, AtLeast(1)] = 16
    """Prompts of each replayed task scored per member and iteration."""
    algorithm: str = field(default="es", repr=False)

    def __post_init__(self):
        check_declared(self)
        if self.mirrored and self.population_size % 2:
            raise ValueError(f"mirrored=True needs an even population_size, got {self.population_size}")
        if (self.noise == "low_rank") != (self.rank is not None):
            raise ValueError(
                f"noise={self.noise!r} with rank={self.rank}: a rank goes with noise 'low_rank', and only with it"
            )
        if self.noise != "low_rank" and self.low_rank_vectors != "frozen":
            raise ValueError(
                f"low_rank_vectors={self.low_rank_vectors!r} with noise={self.noise!r}: it applies to noise "
                "'low_rank' only"
            )
        if self.noise == "low_rank" and self.sparse_share is not None:
            raise ValueError(
                f"sparse_share={self.sparse_share:g} with noise='low_rank': a masked low-rank perturbation is "
                "neither low-rank nor the sparse variant; choose one"
            )
        if bool(self.replay_tasks) != (self.replay_lambda > 0):
            raise ValueError(
                f"replay_tasks={self.replay_tasks} with replay_lambda={self.replay_lambda:g}: give both (tasks "
                "and λ > 0) or neither"
            )
        if self.step_cap is not None and self.numerics != "master":
            raise ValueError(
                f"step_cap={self.step_cap:g} with numerics={self.numerics!r}: only numerics 'master' forms the "
                "whole step before applying it"
            )
        if (self.anchor_decay == "none") != (self.anchor_lambda == 0):
            raise ValueError(
                f"anchor_decay={self.anchor_decay!r} with anchor_lambda={self.anchor_lambda:g}: "
                "give both (a decay and λ > 0) or neither"
            )
        if self.anchor_decay == "l2" and self.alpha * self.anchor_lambda >= 1:
            raise ValueError(
                f"anchor_decay='l2' with alpha={self.alpha:g} and anchor_lambda={self.anchor_lambda:g}: "
                "alpha × anchor_lambda must be < 1, or θ − θ₀ would flip sign or vanish each step"
            )
        if self.save_master and self.numerics != "master":
            raise ValueError(
                f"save_master=True with numerics={self.numerics!r}: only numerics 'master' keeps an fp32 master"
            )
