"""A method of the config (`config.methods.<name>`) as a typed, checked trainer config."""

from __future__ import annotations

from esforget.core.typed_settings import typed
from esforget.train.es_config import ESConfig
from esforget.train.grpo_config import GRPOMethodConfig
from esforget.train.job import TrainingJob

ALGORITHMS = {"es": ESConfig, "grpo": GRPOMethodConfig}


def method_config(name: str, spec: dict) -> ESConfig | GRPOMethodConfig:
    """The trainer config of method `name` (its algorithm's typed config); unknown keys, values
    of the wrong type and bad values name the method and the key (`esforget.core.typed_settings`)."""
    algorithm = spec.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"methods.{name}.algorithm={algorithm!r}: expected one of {sorted(ALGORITHMS)}")
    return typed(ALGORITHMS[algorithm], spec, f"methods.{name}")


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
