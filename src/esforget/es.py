"""Evolution Strategies fine-tuning, as the authors ran it (PAPER.md), written to be read
top to bottom.

Why by hand: no maintained library implements ES for LLM fine-tuning with regenerated noise
(nothing stored), greedy-decoding fitness and Hugging Face checkpoints.

One iteration t, for a population of N members:
    for each member i: draw εᵢ from a seed; score θ + σ εᵢ on the training prompts (greedy);
                       fitness Fᵢ = mean reward
    shape fitnesses:   zᵢ = (Fᵢ − mean F) / std F      (or centred ranks)
    update:            θ ← θ + (α / N) Σᵢ zᵢ εᵢ
Noise is never stored: each εᵢ is regenerated tensor by tensor from its seed to perturb and
again to update. By default the weights being updated are an fp32 master copy, so that
α/N·zᵢ·εᵢ — far below the resolution of bf16/fp16 — accumulates instead of rounding away
and every restore is exact; the model used for generation holds the master cast to the
configured dtype. With `master_copy: false` (fp32 only) the model's own parameters are θ,
perturbed and restored in place as the authors' code does: one copy of the model in memory,
at the price of one rounding step per weight per restore (see `ESConfig.master_copy`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from esforget.checkpoints import checkpoint_name, drop_checkpoints_after, partial_dir, publish
from esforget.distributed import Group
from esforget.io import atomic_path, read_json, write_json
from esforget.models import DTYPES, load_model, load_tokenizer, save_model
from esforget.scoring import GreedyScorer
from esforget.weight_diff import load_tensor, tensor_files

log = logging.getLogger(__name__)


@dataclass
class ESConfig:
    """Hyper-parameters of one ES method (`config.methods.<name>` with `algorithm: es`)."""

    iterations: int = 500
    """Number of ES updates (PAPER.md: 500)."""
    population_size: int = 30
    """N, perturbed models scored per iteration (PAPER.md: 30). Even when `mirrored`."""
    sigma: float = 1e-3
    """σ, standard deviation of the parameter noise (PAPER.md: 1e-3)."""
    alpha: float = 5e-4
    """α, learning rate of the update θ += (α/N) Σ zᵢ εᵢ (PAPER.md: 5e-4)."""
    fitness_shaping: str = "zscore"
    """`zscore` (the authors') or `rank` (centred ranks in [-0.5, 0.5])."""
    mirrored: bool = False
    """Antithetic pairs (+ε, −ε) instead of N independent draws. The authors: off."""
    noise: str = "independent"
    """`independent`: a distinct stream per member and tensor; `paper`: every tensor seeded
    with the member seed, as the authors' code does (equally shaped tensors get equal noise)."""
    prompts_per_iteration: int | None = None
    """Fresh random batch of k training prompts each iteration; null = the full set (paper)."""
    dtype: str = "float32"
    """Precision of the weights being perturbed: float32, bfloat16 or float16 (paper: fp16)."""
    master_copy: bool = True
    """Keep θ as a separate fp32 master: restores are exact, updates accumulate in fp32 whatever
    `dtype`, and runs are bit-identical across process counts and resumes; costs one more fp32
    copy of the parameters. False (the authors' code, fp32 only): perturb θ in place and restore
    it by subtracting the regenerated noise; memory is one model plus one noise tensor, but a
    restore may leave each weight one rounding step off, so results depend on the process count."""
    checkpoint_every: int = 50
    """Save a checkpoint every k iterations (and at the end). PAPER.md: 50."""
    validate_every: int = 10
    """Greedy validation accuracy every m iterations. PAPER.md: 10."""
    validation_size: int | None = None
    """Validation items scored at each validation; null = the whole split."""
    generation_batch_size: int = 64
    """Prompts decoded together."""
    algorithm: str = field(default="es", repr=False)

    def __post_init__(self):
        if self.fitness_shaping not in ("zscore", "rank"):
            raise ValueError(f"fitness_shaping={self.fitness_shaping!r}: expected 'zscore' or 'rank'")
        if self.noise not in ("independent", "paper"):
            raise ValueError(f"noise={self.noise!r}: expected 'independent' or 'paper'")
        if self.mirrored and self.population_size % 2:
            raise ValueError(f"mirrored=True needs an even population_size, got {self.population_size}")
        if not self.master_copy and self.dtype != "float32":
            raise ValueError(
                f"master_copy=False with dtype={self.dtype!r}: in-place updates in {self.dtype} round "
                "α/N·z·ε away; use dtype 'float32' or keep the master copy"
            )
        if self.population_size < 2:
            raise ValueError(f"population_size={self.population_size}: fitness shaping needs at least 2")
        if self.checkpoint_every < 1 or self.validate_every < 1:
            raise ValueError(
                f"checkpoint_every={self.checkpoint_every} and validate_every={self.validate_every} must be ≥ 1"
            )


# --- noise -----------------------------------------------------------------------------------


def member_seed(run_seed: int, iteration: int, draw: int) -> int:
    """A 63-bit seed per (run, iteration, draw) that no arithmetic coincidence can repeat."""
    digest = hashlib.blake2b(f"{run_seed}/{iteration}/{draw}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def noise(shape: torch.Size, seed: int, tensor_index: int, mode: str) -> torch.Tensor:
    """ε for one tensor, regenerated from its seed (fp32, CPU generator: same bits everywhere)."""
    gen = torch.Generator()
    gen.manual_seed(seed if mode == "paper" else member_seed(seed, 0, tensor_index))
    return torch.randn(shape, generator=gen)


def draws(cfg: ESConfig, run_seed: int, iteration: int) -> list[tuple[int, float]]:
    """(noise seed, sign) of every member: N independent draws or N/2 mirrored pairs."""
    if cfg.mirrored:
        pairs = [member_seed(run_seed, iteration, k) for k in range(cfg.population_size // 2)]
        return [(s, sign) for s in pairs for sign in (1.0, -1.0)]
    return [(member_seed(run_seed, iteration, k), 1.0) for k in range(cfg.population_size)]


def shape_fitness(fitness: torch.Tensor, mode: str) -> torch.Tensor:
    """z-scores (zero when every member scored the same) or centred ranks."""
    if mode == "rank":
        ranks = torch.empty_like(fitness)
        ranks[fitness.argsort()] = torch.arange(len(fitness), dtype=fitness.dtype)
        return ranks / (len(fitness) - 1) - 0.5
    std = fitness.std(unbiased=False)
    if std == 0:
        return torch.zeros_like(fitness)
    return (fitness - fitness.mean()) / std


# --- the parameters ES moves -----------------------------------------------------------------


class Weights:
    """θ and the model whose parameters hold θ (+ σε) in the working dtype.

    With a master copy, θ lives apart in fp32 and the model is overwritten from it; without,
    the model's (fp32) parameters are θ and a perturbation is undone by subtracting it again.
    """

    def __init__(self, model: torch.nn.Module, noise_mode: str, master_copy: bool = True):
        self.params = [p for p in model.parameters()]  # tied weights appear once
        self.names = [name for name, _ in model.named_parameters()]
        self.master_copy = master_copy
        self.master = [p.detach().float().clone() for p in self.params] if master_copy else self.params
        self.noise_mode = noise_mode
        self._applied: tuple[int, float] | None = None  # (seed, signed σ) in place, without a master

    @torch.no_grad()
    def perturb(self, seed: int, sign: float, sigma: float) -> None:
        if not self.master_copy:  # undo the previous member first; with a master, p is overwritten
            self.restore()
        for j, (p, m) in enumerate(zip(self.params, self.master)):
            eps = noise(m.shape, seed, j, self.noise_mode).to(m.device)
            if self.master_copy:
                p.copy_(m + (sign * sigma) * eps)
            else:
                p.add_(eps, alpha=sign * sigma)
        self._applied = (seed, sign * sigma)

    @torch.no_grad()
    def restore(self) -> None:
        if self._applied is None:
            return
        seed, scale = self._applied
        for j, (p, m) in enumerate(zip(self.params, self.master)):
            if self.master_copy:
                p.copy_(m)
            else:
                p.sub_(noise(m.shape, seed, j, self.noise_mode).to(m.device), alpha=scale)
        self._applied = None

    @torch.no_grad()
    def update(self, members: list[tuple[int, float]], z: torch.Tensor, alpha: float) -> float:
        """θ += (α/N) Σ zᵢ εᵢ tensor by tensor; returns ‖Δθ‖_F of this update."""
        self.restore()
        scale = alpha / len(members)
        squared = 0.0
        for j, (p, m) in enumerate(zip(self.params, self.master)):
            step = torch.zeros_like(m)
            for (seed, sign), zi in zip(members, z.tolist()):
                if zi != 0.0:
                    step.add_(noise(m.shape, seed, j, self.noise_mode).to(m.device), alpha=sign * zi)
            step.mul_(scale)
            m.add_(step)
            if self.master_copy:
                p.copy_(m)
            squared += float(step.square().sum())
        return math.sqrt(squared)

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set θ from a state written by `state_dict` (the model follows)."""
        self.restore()
        for p, m, name in zip(self.params, self.master, self.names):
            m.copy_(tensors[name])
            p.copy_(m)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: m.detach() for name, m in zip(self.names, self.master)}

    @torch.no_grad()
    def distance_from(self, files: dict[str, Path], dtype: torch.dtype) -> float:
        """‖θ − θ₀‖_F with θ₀ streamed tensor by tensor from the base's safetensors `files`
        (name → file; memory-mapped; rounded to the working dtype as training started), so
        that no second copy of the model is held for this metric."""
        squared = 0.0
        for name, m in zip(self.names, self.master):
            start = load_tensor(files[name], name).to(dtype).float().to(m.device)
            squared += float((m - start).square().sum())
        return math.sqrt(squared)


# --- resumable state ------------------------------------------------------------------------
#
# At each checkpoint the run's work folder (`esforget.checkpoints.partial_dir`) also gets the
# state needed to continue: θ in fp32 (the checkpoint itself may be bf16/fp16), the metrics
# rows so far and the config they belong to. Nothing else is needed: noise and prompt batches
# derive from (seed, iteration).


METRIC_TYPES = {"val/accuracy": pl.Float64}  # null except at validation iterations


def _state_dir(work: Path, t: int) -> Path:
    return work / "state" / checkpoint_name(t)


def save_state(work: Path, t: int, weights: Weights, rows: list[dict], fingerprint: dict) -> None:
    """Write the state after iteration t atomically, then drop older states."""
    from safetensors.torch import save_file

    final = _state_dir(work, t)
    with atomic_path(final, directory=True) as tmp:
        save_file(weights.state_dict(), str(tmp / "theta.safetensors"))
        pl.DataFrame(rows, schema_overrides=METRIC_TYPES).write_parquet(tmp / "metrics.parquet")
        write_json({"iteration": t, "config": fingerprint}, tmp / "state.json")
    for older in final.parent.iterdir():
        if older != final:
            shutil.rmtree(older)


def load_state(work: Path, weights: Weights, fingerprint: dict) -> tuple[int, list[dict]]:
    """Resume from the newest complete state: (last iteration done, metrics rows so far).

    A state written for another config is not resumed (the run starts over), and checkpoints
    newer than the state are dropped: the run remakes them.
    """
    from safetensors.torch import load_file

    states = sorted((work / "state").glob("step??????")) if (work / "state").is_dir() else []
    if not states:
        return 0, []
    state = read_json(states[-1] / "state.json")
    if state["config"] != fingerprint:
        log.warning("ignoring %s: it was written for another config; starting over", work)
        shutil.rmtree(work)
        return 0, []
    t = state["iteration"]
    weights.load(load_file(str(states[-1] / "theta.safetensors")))
    drop_checkpoints_after(work, t)
    log.info("resuming from iteration %d (%s)", t, states[-1])
    return t, pl.read_parquet(states[-1] / "metrics.parquet").to_dicts()


# --- the loop --------------------------------------------------------------------------------


def prompt_batch(seed: int, iteration: int, available: int, k: int) -> list[int]:
    """The k training prompts of one iteration, drawn afresh from (seed, iteration)."""
    return sorted(random.Random(member_seed(seed, iteration, -1)).sample(range(available), k))


def train(
    cfg: ESConfig,
    base_dir: str | Path,
    train_rows: pl.DataFrame,
    validation_rows: pl.DataFrame,
    scorer: str,
    max_new_tokens: int,
    seed: int,
    out_dir: str | Path,
    threads: int = 1,
    stop_strings: list[str] | tuple[str, ...] = (),
) -> pl.DataFrame:
    """Run ES from the base model; write checkpoints and `metrics.parquet` into `out_dir`.

    Launched by `torchrun`, the population is split over its processes (see
    `esforget.distributed`); every process ends with the same weights, rank 0 writes.
    A killed run started again continues from its last checkpoint.
    """
    out = Path(out_dir)
    work = partial_dir(out)
    group = Group.from_env()
    # -- seeding: everything random below derives from `seed` and the iteration --
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    fingerprint = {"algorithm": "es", "seed": seed, "base": str(base_dir), **asdict(cfg)}

    model = load_model(base_dir, cfg.dtype, group.device)
    tokenizer = load_tokenizer(base_dir)
    weights = Weights(model, cfg.noise, cfg.master_copy)
    base_files = tensor_files(base_dir)
    if missing := sorted(set(weights.names) - set(base_files))[:3]:
        raise ValueError(f"{base_dir}: its safetensors files lack parameters of the loaded model, e.g. {missing}")
    full_train = GreedyScorer(
        tokenizer, train_rows, scorer, max_new_tokens, cfg.generation_batch_size, group.device, stop_strings
    )
    if cfg.validation_size is not None:
        validation_rows = validation_rows.head(cfg.validation_size)
    validate = GreedyScorer(
        tokenizer, validation_rows, scorer, max_new_tokens, cfg.generation_batch_size, group.device, stop_strings
    )

    done, rows = load_state(work, weights, fingerprint)
    group.barrier()  # no rank may start before rank 0 has cleaned up a stale work folder
    progress = tqdm(range(done + 1, cfg.iterations + 1), desc="ES", unit="it", mininterval=5,
                    initial=done, total=cfg.iterations, disable=not group.is_main)
    for t in progress:
        started = time.perf_counter()
        fitness_on = full_train
        if cfg.prompts_per_iteration is not None:
            fitness_on = full_train.subset(prompt_batch(seed, t, train_rows.height, cfg.prompts_per_iteration))

        # -- score this rank's members; only the scalars are shared --
        members = draws(cfg, seed, t)
        fitness = torch.zeros(len(members), dtype=torch.float64)
        tokens = torch.zeros(len(members), dtype=torch.float64)
        for i in group.mine(len(members)):
            member_noise, sign = members[i]
            weights.perturb(member_noise, sign, cfg.sigma)
            scored = fitness_on(model)
            fitness[i], tokens[i] = scored.mean_reward, scored.generated_tokens
        weights.restore()
        fitness, tokens = group.sum(fitness), group.sum(tokens)

        # -- the update, identical on every rank --
        z = shape_fitness(fitness, cfg.fitness_shaping)
        step_norm = weights.update(members, z, cfg.alpha)
        if not cfg.master_copy:  # in-place restores rounded differently on each rank
            group.broadcast(weights.master)

        row = {
            "step": t,
            "fitness/mean": float(fitness.mean()),
            "fitness/std": float(fitness.std(unbiased=False)),
            "fitness/max": float(fitness.max()),
            "update/step_norm": step_norm,
            "update/total_norm": weights.distance_from(base_files, DTYPES[cfg.dtype]),
            "perf/seconds": time.perf_counter() - started,
            "perf/generated_tokens": int(tokens.sum()),
            "val/accuracy": None,
        }
        if group.is_main and (t % cfg.validate_every == 0 or t == cfg.iterations):
            row["val/accuracy"] = validate(model).accuracy
        rows.append(row)
        if group.is_main and (t % cfg.checkpoint_every == 0 or t == cfg.iterations):
            save_model(model, tokenizer, work / "checkpoints" / checkpoint_name(t))
            save_state(work, t, weights, rows, fingerprint)
        progress.set_postfix(fitness=f"{row['fitness/mean']:.3f}", val=row["val/accuracy"])
        log.info("iteration %d %s", t, row)

    group.barrier()
    metrics = pl.DataFrame(rows, schema_overrides=METRIC_TYPES)
    if group.is_main:
        publish(work, out, metrics, fingerprint)
    group.close()
    return metrics
