"""Training stops at the first non-finite number instead of publishing a broken model.

A NaN or an Inf in a fitness, a loss or a weight spreads to every weight within an update or
two, and the run would still end, exit 0 and publish a checkpoint that every later stage reads as
a normal run (its evaluation at chance, its weight difference NaN). Both trainers call `require`
after every iteration or optimizer step, before anything is saved; the error names the step and
what went non-finite, so nothing of that run is published.
"""

from __future__ import annotations

import math

import torch


class NonFiniteTraining(FloatingPointError):
    """A trainer met a NaN or an Inf; nothing of its run was published."""


def require(step: str, **values: float | torch.Tensor | None) -> None:
    """A `NonFiniteTraining` naming `step` and every one of `values` (None: not measured this
    step) that holds a NaN or an Inf."""
    bad = {name: value for name, value in values.items() if value is not None and not _finite(value)}
    if bad:
        shown = ", ".join(f"{name}={_shown(value)}" for name, value in bad.items())
        raise NonFiniteTraining(f"{step}: not finite: {shown}; the run stops and publishes nothing")


def first_non_finite_parameter(named_parameters) -> str | None:
    """The name of the first parameter holding a NaN or an Inf, or None."""
    return next((name for name, p in named_parameters if not bool(torch.isfinite(p).all())), None)


def _finite(value: float | torch.Tensor) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(value)


def _shown(value: float | torch.Tensor) -> str:
    if isinstance(value, torch.Tensor) and value.numel() > 1:
        bad = (~torch.isfinite(value)).nonzero().flatten().tolist()
        return f"{value.tolist()} (entries {bad})"
    return str(float(value))
