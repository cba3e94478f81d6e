"""Several ES members in one forward pass.

An ES iteration is N greedy generations of the same prompts by N slightly different models.
`MemberStack` holds K members' weights stacked (`(K, *shape)` per parameter) and, while it is
entered, gives each parameterised layer of the model a grouped forward: the batch's rows come
in K equal blocks, block k is member k's, and each layer multiplies block k by member k's
weights in one batched call. Everything between those layers (attention, rotary positions,
masks, the KV cache) has no weights and runs unchanged on the K × B rows. So one decode step
costs one forward of K × B rows instead of K forwards of B rows: on a small model, where a
step is mostly Python and dispatch overhead, that overhead is divided by K; on a GPU, so is
the number of kernel launches. On a large model on CPU it buys nothing, because every member
still reads its own weights (docs/es_throughput.md).

Why by hand: `torch.func.functional_call` under `vmap` cannot carry Hugging Face's KV cache (a
Python object updated in place from one call to the next) nor its mask construction
(data-dependent checks), so the three kinds of weighted layer a Llama-family decoder has —
Linear, Embedding, RMSNorm — get grouped forwards (`bmm`, one gather) instead. Any other
weighted layer is refused when the stack is built, naming it.

`LowRankStack` is the same idea for low-rank noise (`noise: low_rank`): the members share the
base weights, and each adds its rank-r term, so a population costs about one forward of the
base over all its rows.

Each member's rows of a `MemberStack` see exactly its own weights; only the matrix kernel differs from the
one-member path (`bmm` instead of `mm`), so replies agree up to floating-point ties
(tested on the tiny model).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

RMSNORM_CLASSES = ("LlamaRMSNorm", "Qwen2RMSNorm", "MistralRMSNorm")
"""RMSNorms computing `weight * (x / rms(x))` in the Llama way (Llama, Qwen2, SmolLM2, Mistral);
others (Gemma's `1 + weight`, say) would need a forward of their own."""


class GroupedForwards:
    """What both stacks share: while entered, each layer with a grouped forward runs it instead
    of its own; the batch holds `members` equal blocks of rows, member-major."""

    members: int
    _forwards: dict

    def __enter__(self):
        for module, forward in self._forwards.items():
            module.forward = forward  # an instance attribute shadows the class's forward
        self.active = True
        return self

    def __exit__(self, *exc) -> None:
        for module in self._forwards:
            del module.forward
        self.active = False

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(members · B, …, d) → (members, B · …, d): member k's rows as block k."""
        return x.reshape(self.members, -1, x.shape[-1])

    def _rmsnorm(self, weight: torch.Tensor, eps: float):
        def forward(hidden: torch.Tensor) -> torch.Tensor:  # LlamaRMSNorm's arithmetic, weight per member
            dtype = hidden.dtype
            h = hidden.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            scaled = weight[: self.members, None, :] * self._blocks(h.to(dtype))
            return scaled.reshape(hidden.shape)

        return forward


class MemberStack(GroupedForwards):
    """K members' weights for one model, and the grouped forwards that use them.

    `stacks[j]` is `(K, *shape)` for the model's j-th parameter (tied weights appear once, so
    a tied LM head reads the embedding's stack). Fill slots with `stacks[j][k].copy_(…)`, set
    `members` to the number of filled slots, and run the model inside `with stack:` on a
    batch of `members` × B rows, member-major."""

    def __init__(self, model: torch.nn.Module, size: int):
        if size < 1:
            raise ValueError(f"members per forward must be ≥ 1, got {size}")
        self.model, self.size, self.members = model, size, size
        self.active = False  # inside `with stack:`
        params = list(model.parameters())
        needed, device = size * sum(p.numel() * p.element_size() for p in params), params[0].device
        if needed > (free := free_bytes(device)):
            raise ValueError(
                f"members_per_forward={size}: {size} stacked copies of the model need {needed / 2**30:.2f} GiB, "
                f"{free / 2**30:.2f} GiB are free on {device}; lower it"
            )
        self.stacks = [torch.empty((size, *p.shape), dtype=p.dtype, device=p.device) for p in params]
        stack_of = {id(p): s for p, s in zip(params, self.stacks, strict=True)}
        self._forwards = {}
        for name, module in model.named_modules():
            own = dict(module.named_parameters(recurse=False))
            if own:
                self._forwards[module] = self._grouped(name, module, {k: stack_of[id(p)] for k, p in own.items()})

    @property
    def nbytes(self) -> int:
        return sum(s.numel() * s.element_size() for s in self.stacks)

    def _grouped(self, name: str, module: torch.nn.Module, stacks: dict[str, torch.Tensor]):
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear):
            return self._linear(stacks["weight"], stacks.get("bias"))
        if isinstance(module, torch.nn.Embedding) and set(stacks) == {"weight"}:
            if module.max_norm is not None:
                raise ValueError(f"{name}: an Embedding with max_norm cannot be stacked")
            return self._embedding(stacks["weight"])
        if kind in RMSNORM_CLASSES and set(stacks) == {"weight"}:
            return self._rmsnorm(stacks["weight"], module.variance_epsilon)
        raise ValueError(
            f"{name} ({kind}, parameters {sorted(stacks)}): no grouped forward for this layer; "
            "members_per_forward: 1 runs any model"
        )

    def _linear(self, weight: torch.Tensor, bias: torch.Tensor | None):
        def forward(x: torch.Tensor) -> torch.Tensor:
            w = weight[: self.members].transpose(1, 2)
            if bias is None:
                out = torch.bmm(self._blocks(x), w)
            else:
                out = torch.baddbmm(bias[: self.members, None, :], self._blocks(x), w)
            return out.reshape(*x.shape[:-1], -1)

        return forward

    def _embedding(self, weight: torch.Tensor):
        def forward(ids: torch.Tensor) -> torch.Tensor:
            vocab = weight.shape[1]
            rows_per_member = ids.shape[0] // self.members
            offsets = torch.arange(self.members, device=ids.device).repeat_interleave(rows_per_member) * vocab
            table = weight[: self.members].reshape(-1, weight.shape[-1])
            return F.embedding(ids + offsets.view(-1, *[1] * (ids.dim() - 1)), table)

        return forward


class LowRankStack(GroupedForwards):
    """K members of low-rank ES (`noise: low_rank`) in one forward that shares the base weights:
    the model's parameters hold θ, and each member adds its own rank-r term, as EGGROLL's
    forward does (`do_mm` in `ESHyperscale/HyperscaleES`, `noiser/eggroll.py`):

        Linear     y_k = x_k·Wᵀ + s_k·(x_k·B_k)·A_kᵀ                 (+ the bias)
        Embedding  e_k = W[ids_k] + s_k·A_k[ids_k]·B_kᵀ

    with s_k = ±σ/√r folded into A_k. The base product runs once over all K × B rows — the
    weights are read once per step for the whole population — and the member terms cost
    O(r·(m + n)) per row. 1-D tensors that get noise (`low_rank_vectors: full`) are stacked
    per member as in `MemberStack`; frozen ones are the model's own.

    Fill a slot with `set_factors(j, slot, A·s, B)` for each matrix j and `set_vector(j, slot,
    θ + σε)` for each stacked vector, set `members`, and run the model inside `with stack:`.
    The sum x·W + x·(s·A·Bᵀ) differs from x·(W + s·A·Bᵀ) by rounding only: replies agree with
    `members_per_forward: 1` up to floating-point ties."""

    def __init__(self, model: torch.nn.Module, size: int, rank: int, vectors: str):
        if size < 1:
            raise ValueError(f"members per forward must be ≥ 1, got {size}")
        self.size, self.members, self.active = size, size, False
        params = list(model.parameters())
        self.factors: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # j → (A (K, m, r), B (K, n, r))
        self.vectors: dict[int, torch.Tensor] = {}  # j → (K, d)
        for j, p in enumerate(params):
            if p.dim() == 2:
                m, n = p.shape
                self.factors[j] = (p.new_empty((size, m, rank)), p.new_empty((size, n, rank)))
            elif vectors == "full":
                self.vectors[j] = p.new_empty((size, *p.shape))
        index = {id(p): j for j, p in enumerate(params)}
        self._forwards = {}
        for name, module in model.named_modules():
            own = {k: index[id(p)] for k, p in module.named_parameters(recurse=False)}
            if own and any(j in self.factors or j in self.vectors for j in own.values()):
                self._forwards[module] = self._grouped(name, module, own)

    def set_factors(self, j: int, slot: int, a: torch.Tensor, b: torch.Tensor) -> None:
        self.factors[j][0][slot].copy_(a)
        self.factors[j][1][slot].copy_(b)

    def set_vector(self, j: int, slot: int, value: torch.Tensor) -> None:
        self.vectors[j][slot].copy_(value)

    def _grouped(self, name: str, module: torch.nn.Module, own: dict[str, int]):
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear):
            bias = own.get("bias")
            return self._linear(module, self.factors[own["weight"]], self.vectors.get(bias))
        if isinstance(module, torch.nn.Embedding) and set(own) == {"weight"}:
            if module.max_norm is not None:
                raise ValueError(f"{name}: an Embedding with max_norm cannot be stacked")
            return self._embedding(module, self.factors[own["weight"]])
        if kind in RMSNORM_CLASSES and set(own) == {"weight"}:
            return self._rmsnorm(self.vectors[own["weight"]], module.variance_epsilon)
        raise ValueError(
            f"{name} ({kind}, parameters {sorted(own)}): no low-rank grouped forward for this layer; "
            "members_per_forward: 1 runs any model"
        )

    def _linear(self, module: torch.nn.Linear, factors, bias_stack: torch.Tensor | None):
        a, b = factors

        def forward(x: torch.Tensor) -> torch.Tensor:
            k = self.members
            shared = F.linear(x, module.weight, None if bias_stack is not None else module.bias)
            own = torch.bmm(torch.bmm(self._blocks(x), b[:k]), a[:k].transpose(1, 2))  # (K, rows, m)
            if bias_stack is not None:
                own = own + bias_stack[:k, None, :]
            return shared + own.reshape(shared.shape)

        return forward

    def _embedding(self, module: torch.nn.Embedding, factors):
        a, b = factors

        def forward(ids: torch.Tensor) -> torch.Tensor:
            k, vocab = self.members, a.shape[1]
            offsets = torch.arange(k, device=ids.device).repeat_interleave(ids.shape[0] // k) * vocab
            rows = F.embedding(ids + offsets.view(-1, *[1] * (ids.dim() - 1)), a[:k].reshape(-1, a.shape[-1]))
            own = torch.bmm(self._blocks(rows), b[:k].transpose(1, 2))  # (K, rows, d)
            shared = F.embedding(ids, module.weight, module.padding_idx)
            return shared + own.reshape(shared.shape)

        return forward


def free_bytes(device: torch.device) -> int:
    """Memory free for new tensors on `device`: the GPU's free memory, or the host's available
    memory (`MemAvailable`, which counts reclaimable caches)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError):  # not Linux
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
