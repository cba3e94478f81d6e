"""Which ε each parameter tensor receives for one ES member: the noise streams, regenerated
from seeds and never stored.

Three kinds of noise (`ESConfig.noise`):

* `independent` (this project's default): member seeds hashed from (run seed, iteration,
  draw); every parameter tensor draws from a stream of its own.
* `authors`: what the authors' code drew. Member seeds come from Python's `random` seeded with
  the run seed, `randint(0, 1_000_000)` per member, iteration after iteration
  (`countdown_run_vllm_template.py`); every tensor of the *vLLM* model draws
  `randn(shape)` from a generator seeded with the member seed (`utils/worker_extn.py`). vLLM
  fuses q/k/v into one `qkv_proj` and gate/up into one `gate_up_proj` (rows concatenated in
  that order) and pads the embedding and LM-head rows to a multiple of 64, so q, k and v
  receive consecutive row blocks of one draw, not three equal draws, and so do gate and up.
  `authors_layout` rebuilds those fused draws for the Hugging Face tensors; equally shaped fused
  tensors (all layers' qkv_proj, all norms) still get identical noise, as in the authors' run.

Why by hand: the layout of the authors' draws is a property of their code and vLLM, not
something a library provides.

* `low_rank` (EGGROLL; arXiv 2511.16652, official JAX code `ESHyperscale/HyperscaleES`,
  `noiser/eggroll.py`): every matrix (m × n) gets ε = A·Bᵀ/√r, with A (m × r) and B (n × r)
  the last m and first n rows of one (m + n) × r Gaussian draw from the tensor's own stream, so
  each entry of ε has unit variance, as in full-rank noise, and α keeps its meaning in
  θ += (α/N) Σ zᵢ εᵢ. (EGGROLL's code folds σ and √N into its optimiser's learning rate
  instead.) 1-D tensors — norms, biases — are frozen (ε = 0, as in EGGROLL's LLM runs) or get
  full-rank noise (`ESConfig.low_rank_vectors`). `factors` gives A and B themselves, for the
  member batch that shares the base weights across members (`esforget.train.member_batch`).

Sparse ES (`ESConfig.sparse_share`, the paper's future work): a fixed mask per tensor, drawn
once per run, keeps each draw's ε on a given share of the entries and zero elsewhere, so members
perturb and the update moves only those entries (`sparse_masks`).

The draw itself depends on where it happens (`Noise.draw_on_device`): the fp32 master copy
draws in fp32 with a CPU generator (the same bits on every machine); the authors' numerics
draw in the parameter's dtype on the parameter's device, as their code does, so on a GPU the
noise comes from CUDA's generator (whose bits depend on the GPU model) and on CPU from the CPU
generator.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch

AUTHORS_SEED_HIGH = 1_000_000
"""The authors draw each member seed with `random.randint(0, 1_000_000)`."""

VLLM_VOCAB_PADDING = 64
"""vLLM's DEFAULT_VOCAB_PADDING_SIZE: embedding and LM-head rows are padded to a multiple."""

_FUSED = [  # (pattern, the tensors vLLM concatenates along rows, in order)
    (
        re.compile(r"^(?P<prefix>.*)\.(?P<part>q_proj|k_proj|v_proj)\.(?P<kind>weight|bias)$"),
        ("q_proj", "k_proj", "v_proj"),
    ),
    (re.compile(r"^(?P<prefix>.*)\.(?P<part>gate_proj|up_proj)\.(?P<kind>weight|bias)$"), ("gate_proj", "up_proj")),
]
_VOCAB_ROWS = re.compile(r"(^|\.)(embed_tokens|lm_head)\.weight$")


def member_seed(run_seed: int, iteration: int, draw: int) -> int:
    """A 63-bit seed per (run, iteration, draw) that no arithmetic coincidence can repeat."""
    digest = hashlib.blake2b(f"{run_seed}/{iteration}/{draw}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def mask_seed(run_seed: int, tensor: int) -> int:
    """The seed of a sparse mask: one per (run, parameter tensor), apart from every member's."""
    digest = hashlib.blake2b(f"mask/{run_seed}/{tensor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def sparse_masks(params: list[torch.Tensor], share: float, run_seed: int) -> list[torch.Tensor]:
    """A boolean mask per parameter with exactly round(share × numel) entries set, chosen
    uniformly (a permutation from the tensor's own seed), on the parameter's device."""
    masks = []
    for j, p in enumerate(params):
        generator = torch.Generator().manual_seed(mask_seed(run_seed, j))
        chosen = torch.randperm(p.numel(), generator=generator)[: round(share * p.numel())]
        mask = torch.zeros(p.numel(), dtype=torch.bool)
        mask[chosen] = True
        masks.append(mask.view(p.shape).to(p.device))
    return masks


def authors_member_seeds(run_seed: int, iteration: int, count: int) -> list[int]:
    """The authors' member seeds of `iteration` (1-based): `random.seed(run_seed)` once, then
    `count` calls of `randint(0, 1_000_000)` per iteration. Replayed from the start, so a
    resumed run draws what an uninterrupted one does (15,000 calls at iteration 500: µs)."""
    rng = random.Random(run_seed)
    for _ in range((iteration - 1) * count):
        rng.randint(0, AUTHORS_SEED_HIGH)
    return [rng.randint(0, AUTHORS_SEED_HIGH) for _ in range(count)]


@dataclass(frozen=True)
class Part:
    """Rows [start, stop) of a group's draw belong to parameter `index` (None: the whole draw)."""

    index: int
    start: int | None = None
    stop: int | None = None


@dataclass(frozen=True)
class Group:
    """One draw of noise and the parameter tensors it is split into."""

    stream: int  # distinguishes the group's stream under `independent` noise
    shape: tuple[int, ...]
    parts: tuple[Part, ...]


def independent_layout(shapes: list[torch.Size]) -> list[Group]:
    return [Group(j, tuple(shape), (Part(j),)) for j, shape in enumerate(shapes)]


def authors_layout(names: list[str], shapes: list[torch.Size]) -> list[Group]:
    """The draws of the authors' vLLM model, mapped back onto the Hugging Face tensors."""
    index = {name: j for j, name in enumerate(names)}
    groups, fused = [], set()
    for j, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        if j in fused:
            continue
        match, parts = None, None
        for pattern, order in _FUSED:
            match = pattern.match(name)
            if match:
                parts = [f"{match['prefix']}.{part}.{match['kind']}" for part in order]
                break
        if match and all(p in index for p in parts):
            members = [index[p] for p in parts]
            rows = [shapes[m][0] for m in members]
            if any(tuple(shapes[m][1:]) != tuple(shape[1:]) for m in members):
                raise ValueError(
                    f"cannot fuse {parts}: their shapes {[tuple(shapes[m]) for m in members]} differ beyond rows"
                )
            bounds = [sum(rows[:k]) for k in range(len(rows) + 1)]
            groups.append(
                Group(
                    j, (bounds[-1], *shape[1:]), tuple(Part(m, bounds[k], bounds[k + 1]) for k, m in enumerate(members))
                )
            )
            fused.update(members)
        elif _VOCAB_ROWS.search(name) and len(shape) == 2:
            padded = -(-shape[0] // VLLM_VOCAB_PADDING) * VLLM_VOCAB_PADDING
            groups.append(Group(j, (padded, shape[1]), (Part(j, 0, shape[0]),)))
        else:
            groups.append(Group(j, tuple(shape), (Part(j),)))
    return groups


def draw(shape: tuple[int, ...], seed: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """`randn(shape)` from a generator on `device` seeded with `seed`, as the authors draw it."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return torch.randn(shape, dtype=dtype, device=device, generator=generator)


class Noise:
    """The ε of any member, tensor by tensor, for a fixed list of parameters (zero outside each
    parameter's mask, when `masks` are given)."""

    def __init__(
        self,
        names: list[str],
        params: list[torch.Tensor],
        mode: str,
        draw_on_device: bool,
        masks: list[torch.Tensor] | None = None,
        rank: int | None = None,
        vectors: str = "frozen",
    ):
        """`rank` and `vectors` (`frozen` or `full`): the factors' rank and what 1-D tensors
        get, under `low_rank` noise only."""
        if mode not in ("independent", "authors", "low_rank"):
            raise ValueError(f"noise={mode!r}: expected 'independent', 'authors' or 'low_rank'")
        if (mode == "low_rank") != (rank is not None):
            raise ValueError(f"noise={mode!r} with rank={rank}: a rank goes with low_rank noise, and only with it")
        if vectors not in ("frozen", "full"):
            raise ValueError(f"low_rank_vectors={vectors!r}: expected 'frozen' or 'full'")
        shapes = [p.shape for p in params]
        self.mode, self.rank, self.vectors = mode, rank, vectors
        self.groups = authors_layout(names, shapes) if mode == "authors" else independent_layout(shapes)
        self.params = params
        self.draw_on_device = draw_on_device
        self.masks = masks

    def tensors(self, seed: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(parameter index, ε of that parameter) for the member drawn from `seed`."""
        for group in self.groups:
            yield from self.group_tensors(group, seed)

    def group_tensors(self, group: Group, seed: int) -> list[tuple[int, torch.Tensor]]:
        """(parameter index, ε) of the parameters one draw of the member's noise covers."""
        if self.mode == "low_rank":
            eps = self._low_rank(group, seed)
        else:
            eps = self._draw(group.shape, seed if self.mode == "authors" else member_seed(seed, 0, group.stream), group)
        parts = [(part.index, eps if part.start is None else eps[part.start : part.stop]) for part in group.parts]
        if self.masks is None:
            return parts
        return [(j, part * self.masks[j]) for j, part in parts]

    def factors(self, group: Group, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A (m × r) and B (n × r) of a matrix's low-rank ε = A·Bᵀ/√r for the member drawn from
        `seed`: the last m and the first n rows of one (m + n) × r draw."""
        rows, columns = group.shape
        factors = self._draw((columns + rows, self.rank), member_seed(seed, 0, group.stream), group)
        return factors[columns:], factors[:columns]

    def _low_rank(self, group: Group, seed: int) -> torch.Tensor:
        if len(group.shape) == 2:
            a, b = self.factors(group, seed)
            return (a @ b.T) / math.sqrt(self.rank)
        if self.vectors == "full":
            return self._draw(group.shape, member_seed(seed, 0, group.stream), group)
        first = self.params[group.parts[0].index]
        return torch.zeros(
            group.shape, dtype=first.dtype if self.draw_on_device else torch.float32, device=first.device
        )

    def _draw(self, shape: tuple[int, ...], stream: int, group: Group) -> torch.Tensor:
        """`randn(shape)` from `stream`: in the parameter's dtype on its device, or in fp32 on
        the CPU and then moved (`draw_on_device`)."""
        first = self.params[group.parts[0].index]
        if self.draw_on_device:
            return draw(shape, stream, first.dtype, first.device)
        return draw(shape, stream, torch.float32, "cpu").to(first.device)
