"""The process group ES members are spread over: one process, or `torchrun`'s N processes.

Only scalars cross processes (each member's fitness and token count), so gloo on CPU and NCCL
on GPU both serve; every rank then applies the identical update from the same seeds. (ES
without a master copy is the exception: in-place restores round differently on each rank,
so rank 0's weights are broadcast after every update.) Without
`torchrun` (no WORLD_SIZE in the environment) everything runs in this process.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int
    world: int
    device: str

    @classmethod
    def from_env(cls) -> Group:
        """Join the group `torchrun` describes in the environment, or a group of one."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        cuda = torch.cuda.is_available()
        if world == 1:
            return cls(rank=0, world=1, device="cuda" if cuda else "cpu")
        local_rank = int(os.environ["LOCAL_RANK"])
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        return cls(rank=dist.get_rank(), world=dist.get_world_size(), device=f"cuda:{local_rank}" if cuda else "cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, count: int, block: int = 1) -> list[int]:
        """Indices of the members this rank scores: blocks of `block` neighbours dealt round
        robin, so that ranks finish together and a block (a mirrored pair, which draws its
        noise once) stays on one rank."""
        starts = range(self.rank * block, count, self.world * block)
        return [i for start in starts for i in range(start, min(start + block, count))]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks; each rank fills only its own members' slots, so the
        sum is an exact gather (adding zeros rounds nothing)."""
        if self.world == 1:
            return values
        # NCCL reduces device tensors only; float64 keeps the gathered fitness exact.
        reduced = values.to(self.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.cpu()

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite every rank's `tensors` with rank 0's (in place)."""
        if self.world > 1:
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def check_identical(self, tensors: list[torch.Tensor], what: str) -> None:
        """Fail unless every rank holds bit-identical `tensors`: each rank's update must
        reproduce the others' (and under the authors' numerics, rank 0's weights must have
        been broadcast), or the checkpoint rank 0 writes is not what the run computed."""
        if self.world == 1:
            return
        digest = hashlib.blake2b(digest_size=16)
        for tensor in tensors:
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        digests = [None] * self.world
        dist.all_gather_object(digests, digest.hexdigest())
        if len(set(digests)) > 1:
            raise RuntimeError(f"{what}: the processes hold different weights (digests by rank: {digests})")

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()
