"""What ties ES to its base θ₀ after each update: anchored weight decay and a radius.

* Anchored weight decay (AWD; "Overcoming Forgetting in LLM Fine-Tuning with Evolution
  Strategies", arXiv 2605.30148, code `kschweig/es-awd`, `weight_update_utils.py`): after the
  ES step, θ − θ₀ is shrunk by the step αλ —
      l2:  θ ← θ₀ + (1 − αλ)(θ − θ₀)
      l1:  θ ← θ₀ + sign(θ − θ₀) · max(|θ − θ₀| − αλ, 0)      (soft-thresholding)
  with α the ES learning rate (not α/N), as their code has it. Their claim: most of ES's
  prior-task loss is transient drift that this pulls back.
* A radius (constrained ES, the paper's own future work): after the update and any decay, θ is
  projected onto the ball ‖θ − θ₀‖_F ≤ R, the whole model's distance, by scaling θ − θ₀.

θ₀ is streamed tensor by tensor from the base's safetensors files (memory-mapped) and rounded
to the working dtype as training started, so no second copy of the model is held.

Why by hand: both are a few tensor operations on ES's own parameters, which no optimiser
library holds (ES has no gradient and no optimiser state).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from esforget.core.tensors import load_tensor


class Anchor:
    """θ₀ of each named parameter, read from the base's safetensors `files` (name → file) and
    rounded to `dtype`, the precision training started from."""

    def __init__(self, files: dict[str, Path], dtype: torch.dtype):
        self.files, self.dtype = files, dtype

    def like(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """θ₀ of `name` in `tensor`'s dtype and on its device."""
        return load_tensor(self.files[name], name).to(self.dtype).to(tensor.device, tensor.dtype)


@torch.no_grad()
def decay_toward(theta: torch.Tensor, anchor: torch.Tensor, kind: str, step: float) -> None:
    """AWD in place: shrink `theta` − `anchor` by `step` (= αλ), in `theta`'s dtype."""
    theta.sub_(anchor)
    if kind == "l2":
        theta.mul_(1.0 - step)
    elif kind == "l1":
        theta.copy_(torch.sign(theta) * torch.clamp(theta.abs() - step, min=0.0))
    else:
        raise ValueError(f"anchor_decay={kind!r}: expected 'l1' or 'l2'")
    theta.add_(anchor)


def shrink_to_radius(distance: float, radius: float) -> float:
    """The factor on θ − θ₀ that puts θ on the ball of `radius` (1 when it is inside)."""
    if not math.isfinite(distance):
        raise ValueError(f"cannot project onto the radius: ‖θ − θ₀‖ = {distance}")
    return 1.0 if distance <= radius else radius / distance
