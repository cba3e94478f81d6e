"""Evolution Strategies fine-tuning, as the authors ran it (docs/study.md), written to be read
top to bottom.

Why by hand: no maintained library implements ES for LLM fine-tuning with regenerated noise
(nothing stored), greedy-decoding fitness and Hugging Face checkpoints.

One iteration t, for a population of N members:
    for each member i: draw εᵢ from a seed; score θ + σ εᵢ on the training prompts (greedy);
                       fitness Fᵢ = mean reward
    shape fitnesses:   zᵢ = (Fᵢ − mean F) / std F      (or centred ranks)
    update:            θ ← θ + (α / N) Σᵢ zᵢ εᵢ
Noise is never stored: each εᵢ is regenerated tensor by tensor from its seed to perturb and
again to update (`esforget.train.noise`).

The field's proposed fixes for forgetting are options of the same loop (docs/variants.md):
low-rank ε (`noise: low_rank`), a sparse mask on ε, a capped step, anchored weight decay and a
radius after the update (`esforget.train.anchor`), and replay of prior tasks in the fitness.

Two numerics (`ESConfig.numerics`) decide what that arithmetic rounds:
  master   θ is an fp32 master copy; the model used for generation holds θ + σε cast to the
           working dtype, every restore is exact and α/N·zᵢ·εᵢ accumulates in fp32 before one
           addition. Runs are bit-identical across process counts and resumes.
  authors  what the authors' vLLM run computed: the model's own parameters (fp16 in the paper)
           are θ; `p += σ·ε` and `p -= σ·ε` in place with ε drawn in the parameter's dtype, so a
           restore can leave a weight one rounding step off; the update is N separately rounded
           in-place additions `p += (α/N)·zᵢ·εᵢ`, so a contribution below half a rounding step
           of its weight is lost; z-scores in float32 with std + 1e-8. With several processes
           rank 0's weights (its restore drift included) are broadcast after each update, as
           the authors' engine 0 broadcast its own. The drift the restores leave is logged.

Two levers change only the time an iteration takes (the tests find the same fitnesses and
weights bit for bit on CPU, under both numerics): `members_per_forward` decodes K members in
one batched forward (`esforget.train.member_batch`), and `draft_replies` has each member verify θ's
own greedy reply in one pass before decoding on (`esforget.decoding.generation`; docs/es_throughput.md).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from esforget.core.checkpoints import checkpoint_name, partial_dir, publish, run_fingerprint
from esforget.core.models import DTYPES, device_name, load_model, load_tokenizer, save_model
from esforget.core.tensors import tensor_files
from esforget.decoding.greedy_scorer import GreedyScorer
from esforget.train import finite, resume
from esforget.train.anchor import Anchor, decay_toward, shrink_to_radius
from esforget.train.distributed import Group
from esforget.train.es_config import ESConfig
from esforget.train.job import TrainingJob
from esforget.train.live_metrics import LiveMetrics
from esforget.train.member_batch import LowRankStack, MemberStack
from esforget.train.noise import Noise, authors_member_seeds, member_seed, sparse_masks

log = logging.getLogger(__name__)


# --- members and fitness shaping --------------------------------------------------------------


def draws(cfg: ESConfig, run_seed: int, iteration: int) -> list[tuple[int, float]]:
    """(noise seed, sign) of every member: N independent draws or N/2 mirrored pairs."""
    count = cfg.population_size // 2 if cfg.mirrored else cfg.population_size
    if cfg.noise == "authors":
        seeds = authors_member_seeds(run_seed, iteration, count)
    else:
        seeds = [member_seed(run_seed, iteration, k) for k in range(count)]
    if cfg.mirrored:
        return [(s, sign) for s in seeds for sign in (1.0, -1.0)]
    return [(s, 1.0) for s in seeds]


def by_seed(members: list[tuple[int, float]]) -> list[tuple[int, list[tuple[int, float]]]]:
    """(seed, [(position, sign), …]) for each run of neighbouring members that share a seed:
    a mirrored pair, whose ε is then drawn once for both (drawing every member's was 7 % of
    the tiny model's iteration)."""
    return [
        (seed, [(i, sign) for i, (_, sign) in run]) for seed, run in groupby(enumerate(members), key=lambda m: m[1][0])
    ]


def with_replay(rewards: torch.Tensor, lam: float) -> torch.Tensor:
    """Each member's fitness from its mean rewards (rows: the new task, then each replayed prior
    task; columns: members): the new task's plus λ × the mean of the replayed tasks'."""
    if rewards.shape[0] == 1:
        return rewards[0]
    return rewards[0] + lam * rewards[1:].mean(dim=0)


def shape_fitness(fitness: torch.Tensor, mode: str, numerics: str = "master") -> torch.Tensor:
    """z-scores or centred ranks of the members' fitnesses (float64 tensor).

    z-scores under the master numerics are exact (zero when every member scored the same);
    under the authors' they are their code's: float32 numpy, population std + 1e-8."""
    if mode == "rank":
        ranks = torch.empty_like(fitness)
        ranks[fitness.argsort()] = torch.arange(len(fitness), dtype=fitness.dtype)
        return ranks / (len(fitness) - 1) - 0.5
    if numerics == "authors":
        rewards = np.asarray(fitness.tolist(), dtype=np.float32)
        z = (rewards - float(rewards.mean())) / (float(rewards.std()) + 1e-8)
        return torch.from_numpy(z.astype(np.float64))
    if bool((fitness == fitness[0]).all()):  # not `std == 0`: rounding leaves ~1e-17, and z = ±1
        return torch.zeros_like(fitness)
    return (fitness - fitness.mean()) / fitness.std(unbiased=False)


def authors_coefficients(members: list[tuple[int, float]], z: torch.Tensor, alpha: float) -> list[float]:
    """(α/N)·zᵢ of each member as the authors' numpy computed it: a float32 product."""
    coefficients = (alpha / len(members)) * z.numpy().astype(np.float32)
    return [float(c) * sign for c, (_, sign) in zip(coefficients, members, strict=True)]


# --- the parameters ES moves -----------------------------------------------------------------


class Weights:
    """θ (`theta`, one tensor per parameter) and the model whose parameters hold θ (+ σε) in the
    working dtype.

    numerics `master`: θ is a master copy in fp32, apart from the model, which is overwritten
    from it.
    numerics `authors`: θ is the model's own parameters (no copy); a perturbation is undone by adding the
    regenerated noise with the opposite sign, in the parameters' dtype, as the authors' code
    does (`p.add_(scale * noise)`: the product is rounded, then the sum; not `add_(noise,
    alpha=scale)`, which rounds once).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        noise_mode: str,
        numerics: str = "master",
        track_drift: bool = True,
        sparse: tuple[float, int] | None = None,
        low_rank: tuple[int, str] | None = None,
    ):
        """`sparse`: (share, run seed) of sparse ES's fixed masks (`esforget.train.noise.sparse_masks`);
        `low_rank`: (rank, what 1-D tensors get) of `low_rank` noise."""
        self.params = [p for p in model.parameters()]  # tied weights appear once
        self.names = [name for name, _ in model.named_parameters()]
        self.in_place = numerics == "authors"
        self.theta = self.params if self.in_place else [p.detach().float().clone() for p in self.params]
        masks = None if sparse is None else sparse_masks(self.params, *sparse)
        rank, vectors = low_rank or (None, "frozen")
        self.noise = Noise(self.names, self.params, noise_mode, self.in_place, masks, rank, vectors)
        self._applied: tuple[int, float] | None = None  # (seed, signed σ) in place
        # The restores' drift (authors' numerics): θ at the start of the members, and the
        # drift summed over all iterations so far (fp32, on the CPU: the GPU holds only what
        # the authors' engines held).
        self.track_drift = self.in_place and track_drift
        self._before: list[torch.Tensor] | None = None
        self.drift = [torch.zeros(p.shape, dtype=torch.float32) for p in self.params] if self.track_drift else None

    @torch.no_grad()
    def perturb(self, seed: int, sign: float, sigma: float) -> None:
        if self.in_place:  # undo the previous member first; with a master, p is overwritten
            self.restore()
        for j, eps in self.noise.tensors(seed):
            if self.in_place:
                self.params[j].add_((sign * sigma) * eps)
            else:
                self.params[j].copy_(self.theta[j] + (sign * sigma) * eps)
        self._applied = (seed, sign * sigma)

    @torch.no_grad()
    def fill(self, stack: MemberStack | LowRankStack, members: list[tuple[int, float]], sigma: float) -> None:
        """Put θ + σε of each (seed, sign) of `members` into slots 0, 1, … of `stack`, with the
        arithmetic of `perturb`: from the master (the model keeps θ), each mirrored pair
        drawing its noise once; or in place with the authors' restores, and copied. A
        `LowRankStack` gets each matrix's factors instead, σ/√r and the sign folded into A."""
        if isinstance(stack, LowRankStack):
            scale = sigma / math.sqrt(self.noise.rank)
            for slot, (seed, sign) in enumerate(members):
                for group in self.noise.groups:
                    j = group.parts[0].index
                    if j in stack.factors:
                        a, b = self.noise.factors(group, seed)
                        stack.set_factors(j, slot, (sign * scale) * a, b)
                    elif j in stack.vectors:
                        ((_, eps),) = self.noise.group_tensors(group, seed)
                        stack.set_vector(j, slot, self.theta[j] + (sign * sigma) * eps)
            stack.members = len(members)
            return
        if self.in_place:
            for slot, (seed, sign) in enumerate(members):
                self.perturb(seed, sign, sigma)
                for stacked, p in zip(stack.stacks, self.params, strict=True):
                    stacked[slot].copy_(p)
        else:
            for seed, placed in by_seed(members):
                for j, eps in self.noise.tensors(seed):
                    for slot, sign in placed:
                        stack.stacks[j][slot].copy_(self.theta[j] + (sign * sigma) * eps)
        stack.members = len(members)

    @torch.no_grad()
    def restore(self) -> None:
        if self._applied is None:
            return
        seed, scale = self._applied
        if self.in_place:
            for j, eps in self.noise.tensors(seed):
                self.params[j].add_(-scale * eps)
        else:
            for p, m in zip(self.params, self.theta, strict=True):
                p.copy_(m)
        self._applied = None

    @torch.no_grad()
    def begin_members(self) -> None:
        """Remember θ before this iteration's members (authors' numerics: to measure drift)."""
        if self.track_drift:
            self._before = [p.detach().to("cpu", copy=True) for p in self.params]

    @torch.no_grad()
    def end_members(self) -> tuple[float | None, float | None]:
        """Restore the last member; return (‖θ now − θ before the members‖_F, the same for the
        drift summed over all iterations): 0 under the master numerics, None when not tracked."""
        self.restore()
        if not self.in_place:
            return 0.0, 0.0
        if not self.track_drift:
            return None, None
        step, total = 0.0, 0.0
        for p, before, drift in zip(self.params, self._before, self.drift, strict=True):
            moved = p.detach().float().cpu() - before.float()
            drift.add_(moved)
            step += float(moved.square().sum())
            total += float(drift.square().sum())
        self._before = None
        return math.sqrt(step), math.sqrt(total)

    @torch.no_grad()
    def update(
        self, members: list[tuple[int, float]], z: torch.Tensor, alpha: float, cap: float | None = None
    ) -> float:
        """θ += (α/N) Σ zᵢ εᵢ, scaled down to ‖Δθ‖_F = `cap` where it is longer (bounded ES:
        the whole model's step; master numerics only); returns ‖Δθ‖_F as applied (after rounding).

        Draw by draw and, within a draw, member by member: each weight sees the additions in
        member order, exactly as in the authors' member-by-member loop over all tensors. A
        mirrored pair's noise is drawn once and added twice. Under a cap the steps of all
        tensors are held until their norm is known: one more fp32 copy of θ."""
        self.restore()
        if self.in_place:
            if cap is not None:
                raise ValueError("a capped step needs numerics 'master': the authors' update is never one tensor")
            return self._update_in_place(members, z, alpha)
        steps = self._steps(members, z, alpha)
        if cap is not None:
            steps = list(steps)
            norm = math.sqrt(sum(float(step.square().sum()) for _, step in steps))
            for _, step in steps:
                step.mul_(min(1.0, cap / norm) if norm > 0 else 1.0)
        squared = 0.0
        for j, step in steps:
            self.theta[j].add_(step)
            self.params[j].copy_(self.theta[j])
            squared += float(step.square().sum())
        return math.sqrt(squared)

    def _steps(
        self, members: list[tuple[int, float]], z: torch.Tensor, alpha: float
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(parameter index, (α/N) Σ zᵢ εᵢ of that parameter) in fp32, one draw at a time."""
        zs = z.tolist()
        for group in self.noise.groups:
            steps = {part.index: torch.zeros_like(self.theta[part.index]) for part in group.parts}
            for seed, placed in by_seed(members):
                if scales := [sign * zs[i] for i, sign in placed if zs[i] != 0.0]:
                    for j, eps in self.noise.group_tensors(group, seed):
                        for scale in scales:
                            steps[j].add_(eps, alpha=scale)
            for j, step in steps.items():
                yield j, step.mul_(alpha / len(members))

    def _update_in_place(self, members: list[tuple[int, float]], z: torch.Tensor, alpha: float) -> float:
        """The authors' update: N in-place additions of (α/N)·zᵢ·εᵢ, each rounded to the dtype."""
        coefficients = authors_coefficients(members, z, alpha)
        squared = 0.0
        for group in self.noise.groups:
            before = {part.index: self.params[part.index].detach().to(torch.float32, copy=True) for part in group.parts}
            for seed, placed in by_seed(members):
                for j, eps in self.noise.group_tensors(group, seed):
                    for i, _ in placed:
                        self.params[j].add_(coefficients[i] * eps)
            squared += sum(float((self.params[j].float() - b).square().sum()) for j, b in before.items())
        return math.sqrt(squared)

    @torch.no_grad()
    def decay_toward(self, anchor: Anchor, kind: str, step: float) -> None:
        """Anchored weight decay after an update (`esforget.train.anchor`): θ − θ₀ shrunk by
        `step` = αλ, in θ's precision (fp32 master, or in place in the model's dtype)."""
        for p, m, name in zip(self.params, self.theta, self.names, strict=True):
            decay_toward(m, anchor.like(name, m), kind, step)
            if not self.in_place:
                p.copy_(m)

    @torch.no_grad()
    def keep_within(self, anchor: Anchor, radius: float) -> None:
        """Project θ onto the ball ‖θ − θ₀‖_F ≤ `radius` (constrained ES)."""
        factor = shrink_to_radius(self.distance_from(anchor), radius)
        if factor == 1.0:
            return
        for p, m, name in zip(self.params, self.theta, self.names, strict=True):
            start = anchor.like(name, m)
            m.sub_(start).mul_(factor).add_(start)
            if not self.in_place:
                p.copy_(m)

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor], drift: dict[str, torch.Tensor] | None = None) -> None:
        """Set θ (and the summed drift) from a state written by `state_dict`; the model follows."""
        self.restore()
        for p, m, name in zip(self.params, self.theta, self.names, strict=True):
            m.copy_(tensors[name])
            p.copy_(m)
        if self.drift is not None and drift is not None:
            for d, name in zip(self.drift, self.names, strict=True):
                d.copy_(drift[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: m.detach() for name, m in zip(self.names, self.theta, strict=True)}

    def drift_state(self) -> dict[str, torch.Tensor] | None:
        return None if self.drift is None else dict(zip(self.names, self.drift, strict=True))

    @torch.no_grad()
    def distance_from(self, anchor: Anchor) -> float:
        """‖θ − θ₀‖_F with θ₀ streamed tensor by tensor (`Anchor`), so that no second copy of
        the model is held for this metric."""
        squared = 0.0
        for name, m in zip(self.names, self.theta, strict=True):
            squared += float((m.float() - anchor.like(name, m).float()).square().sum())
        return math.sqrt(squared)


# --- resumable state ------------------------------------------------------------------------
#
# At each checkpoint the run's work folder gets, beside the checkpoint, what ES needs to continue
# (`esforget.train.resume` writes the metrics so far and completes the state): θ (the fp32 master,
# or under the authors' numerics the parameters in their dtype) and the restores' summed drift
# (authors' numerics). Nothing else is needed: noise and prompt batches derive from (seed,
# iteration).


METRIC_TYPES = {  # columns that may be null: validation only every m iterations, drift if not tracked
    "val/accuracy": pl.Float64,
    "drift/step_norm": pl.Float64,
    "drift/total_norm": pl.Float64,
}


def save_state(work: Path, t: int, weights: Weights, rows: list[dict], fingerprint: dict) -> None:
    """The state after iteration t, in `<work>/state/step<t>/`; older states are dropped."""
    from safetensors.torch import save_file

    folder = work / "state" / checkpoint_name(t)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights.state_dict(), str(folder / "theta.safetensors"))
    if (drift := weights.drift_state()) is not None:
        save_file(drift, str(folder / "drift.safetensors"))
    resume.complete(folder, t, pl.DataFrame(rows, schema_overrides=METRIC_TYPES), fingerprint)


def load_state(work: Path, weights: Weights, fingerprint: dict) -> tuple[int, list[dict]]:
    """Resume from the newest complete state of this config: (last iteration done, metrics rows
    so far); (0, []) to start afresh (`esforget.train.resume.latest`)."""
    from safetensors.torch import load_file

    state = resume.latest(work / "state", work, fingerprint)
    if state is None:
        return 0, []
    drift = state.folder / "drift.safetensors"
    weights.load(load_file(str(state.folder / "theta.safetensors")), load_file(str(drift)) if drift.exists() else None)
    return state.step, state.rows


# --- the loop --------------------------------------------------------------------------------


def prompt_batch(seed: int, iteration: int, available: int, k: int, stream: int = -1) -> list[int]:
    """The k training prompts of one iteration, drawn afresh from (seed, iteration); `stream`
    −1 for the new task, −2, −3, … for the replayed tasks in order."""
    return sorted(random.Random(member_seed(seed, iteration, stream)).sample(range(available), k))


def train(cfg: ESConfig, job: TrainingJob) -> pl.DataFrame:
    """Run ES from the job's base model; write checkpoints and `metrics.parquet` into its `out_dir`.

    Launched by `torchrun`, the population is split over its processes (see
    `esforget.train.distributed`); every process ends with the same weights, rank 0 writes.
    A killed run started again continues from its last checkpoint.
    """
    out, seed = job.out_dir, job.seed
    work = partial_dir(out)
    group = Group.from_env()
    # -- seeding: everything random below derives from `seed` and the iteration --
    torch.manual_seed(seed)
    torch.set_num_threads(job.threads)
    fingerprint = run_fingerprint("es", cfg, seed, job.base_dir)

    model = load_model(job.base_dir, cfg.dtype, group.device)
    tokenizer = load_tokenizer(job.base_dir)
    sparse = None if cfg.sparse_share is None else (cfg.sparse_share, seed)
    low_rank = (cfg.rank, cfg.low_rank_vectors) if cfg.noise == "low_rank" else None
    weights = Weights(model, cfg.noise, cfg.numerics, cfg.track_drift, sparse, low_rank)
    block = 2 if cfg.mirrored else 1  # a mirrored pair is scored on one rank: its ε is drawn once
    # no slot left unfilled; a rank left without members (fewer pairs than ranks) still joins
    # every sum and broadcast
    per_forward = max(1, min(cfg.members_per_forward, len(group.mine(cfg.population_size, block))))
    stack = None
    if per_forward > 1 and cfg.noise == "low_rank" and cfg.numerics == "master":  # members share θ's weights
        stack = LowRankStack(model, per_forward, cfg.rank, cfg.low_rank_vectors)
    elif per_forward > 1:
        stack = MemberStack(model, per_forward)
    base_files = tensor_files(job.base_dir)
    if missing := sorted(set(weights.names) - set(base_files))[:3]:
        raise ValueError(f"{job.base_dir}: its safetensors files lack parameters of the loaded model, e.g. {missing}")
    anchor = Anchor(base_files, DTYPES[cfg.dtype])  # θ₀ as training started: distance, AWD, radius

    def scorer(rows: pl.DataFrame) -> GreedyScorer:
        return GreedyScorer(
            tokenizer, rows, job.scorer, job.max_new_tokens, cfg.generation_batch_size, group.device, job.stop_strings
        )

    full_train = scorer(job.train_rows)
    if [task.name for task in job.replay] != cfg.replay_tasks:
        raise ValueError(f"replay_tasks={cfg.replay_tasks}, but the job brings {[task.name for task in job.replay]}")
    replayed = [
        GreedyScorer(
            tokenizer, t.rows, t.scorer, t.max_new_tokens, cfg.generation_batch_size, group.device, t.stop_strings
        )
        for t in job.replay
    ]
    validation_rows = job.validation_rows
    if cfg.validation_size is not None:
        validation_rows = validation_rows.head(cfg.validation_size)
    validate = scorer(validation_rows)

    done, rows = load_state(work, weights, fingerprint)
    group.barrier()  # no rank may start before rank 0 has cleaned up a stale work folder
    live = LiveMetrics(job.out_dir, job.report_to if group.is_main else (), first_step=done + 1)
    progress = tqdm(
        range(done + 1, cfg.iterations + 1),
        desc="ES",
        unit="it",
        mininterval=5,
        initial=done,
        total=cfg.iterations,
        disable=not group.is_main,
    )
    for t in progress:
        started = time.perf_counter()
        fitness_on = full_train
        if cfg.prompts_per_iteration is not None:
            fitness_on = full_train.subset(prompt_batch(seed, t, job.train_rows.height, cfg.prompts_per_iteration))

        replay_on = [
            on.subset(prompt_batch(seed, t, task.rows.height, cfg.replay_prompts, stream=-2 - r))
            for r, (on, task) in enumerate(zip(replayed, job.replay, strict=True))
        ]

        # -- score this rank's members, K at a time; only the scalars are shared --
        # the scorers of this iteration (new task first, then each replayed task) and θ's own replies
        scorers = [fitness_on, *replay_on]
        drafts = [on.drafts(model) if cfg.draft_replies else None for on in scorers]
        members = draws(cfg, seed, t)
        rewards = torch.zeros((len(scorers), len(members)), dtype=torch.float64)  # per scorer and member
        tokens = torch.zeros(len(members), dtype=torch.float64)
        weights.begin_members()
        mine = group.mine(len(members), block)
        for start in range(0, len(mine), per_forward):
            chunk = mine[start : start + per_forward]
            if stack is None:
                weights.perturb(*members[chunk[0]], cfg.sigma)
                scored = [on.score(model, 1, d) for on, d in zip(scorers, drafts, strict=True)]
            else:
                weights.fill(stack, [members[i] for i in chunk], cfg.sigma)
                with stack:
                    scored = [on.score(model, len(chunk), d) for on, d in zip(scorers, drafts, strict=True)]
            for s, by_member in enumerate(scored):
                for i, member in zip(chunk, by_member, strict=True):
                    rewards[s, i], tokens[i] = member.mean_reward, tokens[i] + member.generated_tokens
        drift_norm, drift_total = weights.end_members()  # restores the last member
        rewards, tokens = group.sum(rewards), group.sum(tokens)
        fitness = with_replay(rewards, cfg.replay_lambda)
        finite.require(f"ES iteration {t}", fitness=fitness)

        # -- the update, identical on every rank --
        z = shape_fitness(fitness, cfg.fitness_shaping, cfg.numerics)
        step_norm = weights.update(members, z, cfg.alpha, cfg.step_cap)
        if weights.in_place:  # restores drifted differently on each rank: rank 0's weights win
            group.broadcast(weights.theta)
        if cfg.anchor_decay != "none":
            weights.decay_toward(anchor, cfg.anchor_decay, cfg.alpha * cfg.anchor_lambda)
        if cfg.radius is not None:
            weights.keep_within(anchor, cfg.radius)

        row = {
            "step": t,
            "fitness/mean": float(fitness.mean()),
            "fitness/std": float(fitness.std(unbiased=False)),
            "fitness/max": float(fitness.max()),
            "update/step_norm": step_norm,
            "update/total_norm": weights.distance_from(anchor),
            "drift/step_norm": drift_norm,
            "drift/total_norm": drift_total,
            "perf/seconds": time.perf_counter() - started,
            "perf/generated_tokens": int(tokens.sum()),
            "val/accuracy": None,
        }
        if replayed:  # fitness/* is what ES climbs: the new task's reward plus λ × the replayed tasks'
            row["fitness/new_task"] = float(rewards[0].mean())
            row |= {f"replay/{task.name}": float(rewards[1 + r].mean()) for r, task in enumerate(job.replay)}
        finite.require(
            f"ES iteration {t} (alpha={cfg.alpha:g}, sigma={cfg.sigma:g})",
            **{key: row[key] for key in ("update/step_norm", "update/total_norm")},
        )
        if group.is_main and (t % cfg.validate_every == 0 or t == cfg.iterations):
            row["val/accuracy"] = validate(model).accuracy
        rows.append(row)
        if t % cfg.checkpoint_every == 0 or t == cfg.iterations:
            group.check_identical(weights.theta, f"iteration {t}")  # what rank 0 writes is every rank's θ
            if group.is_main:
                master = weights.state_dict() if cfg.save_master else None
                save_model(model, tokenizer, work / "checkpoints" / checkpoint_name(t), master=master)
                save_state(work, t, weights, rows, fingerprint)
        progress.set_postfix(fitness=f"{row['fitness/mean']:.3f}", val=row["val/accuracy"])
        log.info("iteration %d %s", t, row)
        live.add(row)

    live.close()
    group.barrier()
    metrics = pl.DataFrame(rows, schema_overrides=METRIC_TYPES)
    if group.is_main:
        publish(work, out, metrics, fingerprint, device_name(group.device), cfg.dtype)  # members decode in θ's dtype
    group.close()
    return metrics
