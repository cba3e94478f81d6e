"""Training metrics as TensorBoard events, read back with TensorBoard's own reader."""

import dataclasses

import polars as pl
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from esforget.data.sources import build_splits
from esforget.train import es
from esforget.train.job import TrainingJob
from esforget.train.live_metrics import LiveMetrics, tensorboard_dir
from tests.shared import MICRO_COUNTDOWN


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(tensorboard_dir(run_dir)))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_numeric_values_become_scalars_at_their_step_and_missing_ones_are_left_out(tmp_path):
    live = LiveMetrics(tmp_path, ("tensorboard",))
    live.add({"step": 1, "fitness/mean": 0.25, "val/accuracy": None, "perf/generated_tokens": 40})
    live.add({"step": 2, "fitness/mean": 0.5, "val/accuracy": 0.75, "perf/generated_tokens": float("nan")})
    live.close()
    assert scalars(tmp_path) == {
        "fitness/mean": [(1, 0.25), (2, 0.5)],
        "val/accuracy": [(2, 0.75)],
        "perf/generated_tokens": [(1, 40.0)],
    }


def test_a_resumed_run_replaces_the_steps_it_repeats(tmp_path):
    first = LiveMetrics(tmp_path, ("tensorboard",))
    for step in (1, 2, 3):
        first.add({"step": step, "loss": float(step)})
    first.close()  # killed after step 3; its last saved state was step 2
    again = LiveMetrics(tmp_path, ("tensorboard",), first_step=3)
    again.add({"step": 3, "loss": 30.0})
    again.close()
    assert scalars(tmp_path)["loss"] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_off_by_default_writes_nothing_and_an_unknown_reporter_is_refused(tmp_path):
    LiveMetrics(tmp_path, ()).add({"step": 1, "loss": 1.0})
    assert not tensorboard_dir(tmp_path).exists()
    with pytest.raises(ValueError, match="wandb"):
        LiveMetrics(tmp_path, ("wandb",))


def test_an_es_run_shows_every_iteration_as_its_metrics_table_records_it(micro_model_dir, tmp_path):
    data = build_splits(MICRO_COUNTDOWN, {"train": 8, "validation": 4, "test": 1}, seed=0)
    cfg = es.ESConfig(population_size=2, iterations=3, sigma=0.1, alpha=0.01, checkpoint_every=3, validate_every=2)
    job = TrainingJob(micro_model_dir, data["train"], data["validation"], "countdown", 4, seed=0, out_dir=tmp_path)
    metrics = es.train(cfg, dataclasses.replace(job, report_to=("tensorboard",)))
    shown = scalars(tmp_path)
    for column in ("fitness/mean", "update/total_norm"):
        assert shown[column] == [(s, pytest.approx(v)) for s, v in zip(metrics["step"], metrics[column], strict=True)]
    validated = metrics.filter(pl.col("val/accuracy").is_not_null())
    assert shown["val/accuracy"] == list(zip(validated["step"], validated["val/accuracy"], strict=True))
