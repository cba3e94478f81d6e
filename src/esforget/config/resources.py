"""What each job asks a cluster for: the model's `resources`, or the defaults of its kind."""

from __future__ import annotations

JOB_RESOURCES = {
    "tiny": {"gpus": 0, "mem_mb": 4000, "runtime": 60},
    "pretrained": {"gpus": 1, "mem_mb": 32000, "runtime": 720},
}
"""What a job of a model asks a cluster for unless `models.<name>.resources` says otherwise:
a tiny model runs on CPU in minutes; a pretrained one (SmolLM2 to 7B) wants a GPU and hours."""

SMALL_JOB = {"mem_mb": 4000, "runtime": 30}
"""Data preparation and the report: CPU, small tables."""


def job_resources(spec: dict) -> dict:
    """The cluster resources of a model's jobs: its `resources`, the defaults of its kind under them."""
    defaults = JOB_RESOURCES["tiny" if spec["kind"] == "tiny" else "pretrained"]
    return {**defaults, **spec.get("resources", {})}
