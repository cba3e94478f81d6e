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

Each member's rows see exactly its own weights; only the matrix kernel differs from the
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


class MemberStack:
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

    def __enter__(self) -> MemberStack:
        for module, forward in self._forwards.items():
            module.forward = forward  # an instance attribute shadows the class's forward
        self.active = True
        return self

    def __exit__(self, *exc) -> None:
        for module in self._forwards:
            del module.forward
        self.active = False

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

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(members · B, …, d) → (members, B · …, d): member k's rows as block k."""
        return x.reshape(self.members, -1, x.shape[-1])

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

    def _rmsnorm(self, weight: torch.Tensor, eps: float):
        def forward(hidden: torch.Tensor) -> torch.Tensor:  # LlamaRMSNorm's arithmetic, weight per member
            dtype = hidden.dtype
            h = hidden.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            scaled = weight[: self.members, None, :] * self._blocks(h.to(dtype))
            return scaled.reshape(hidden.shape)

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
