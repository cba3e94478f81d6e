"""A method of the config (`config.methods.<name>`) as a typed, checked trainer config."""

from __future__ import annotations

import dataclasses

from esforget.train.es_config import ESConfig
from esforget.train.grpo_config import GRPOMethodConfig
from esforget.train.job import TrainingJob

ALGORITHMS = {"es": ESConfig, "grpo": GRPOMethodConfig}


def method_config(name: str, spec: dict) -> ESConfig | GRPOMethodConfig:
    """Build the trainer config of method `name`; unknown keys and bad values name the method."""
    algorithm = spec.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"methods.{name}.algorithm={algorithm!r}: expected one of {sorted(ALGORITHMS)}")
    cls = ALGORITHMS[algorithm]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(
            f"methods.{name}: unknown key(s) {unknown} for algorithm {algorithm!r}; known: {sorted(known)}"
        )
    try:
        return cls(**spec)
    except ValueError as err:
        raise ValueError(f"methods.{name}: {err}") from None


def training_dtype(spec: dict) -> str:
    """The dtype a run's θ₀ had: ES starts from the base rounded to its `dtype`; GRPO trains an
    fp32 master whatever the base's storage."""
    cfg = method_config("method", spec)
    return cfg.dtype if isinstance(cfg, ESConfig) else "float32"


def train(name: str, spec: dict, job: TrainingJob):
    """Train `job` with the algorithm of method `name` (`esforget.train.es.train`,
    `esforget.train.grpo.train`), imported only here: each pulls in its own heavy libraries."""
    cfg = method_config(name, spec)
    if isinstance(cfg, ESConfig):
        from esforget.train import es

        return es.train(cfg, job)
    from esforget.train import grpo

    return grpo.train(cfg, job)
