"""benchmarks/gpu_check.py, the GPU machine's one short run, in its CPU mode with tiny shapes:
every stage it times runs on both model shapes and reports what the GPU run will report."""

import importlib.util
import json

import pytest

from tests.shared import REPO

pytestmark = pytest.mark.slow


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cpu_mode_runs_every_stage_on_both_shapes_and_reports_against_the_floor(tmp_path, capsys):
    rows = gpu_check().main(
        [
            "--tiny",
            "--iterations",
            "2",
            "--population",
            "2",
            "--prompts",
            "4",
            "--max-new-tokens",
            "4",
            "--grpo-prompts",
            "2",
            "--grpo-generations",
            "2",
            "--workdir",
            str(tmp_path),
        ]  # fmt: skip
    )
    assert [row["model"] for row in rows] == ["qwen2.5-1.5b", "llama-3.2-1b"]
    printed = [json.loads(line) for line in capsys.readouterr().out.split("\n") if line.startswith('{"model"')]
    assert printed == rows  # one JSON line per model
    for row in rows:
        for stage in ("es_authors_fp16", "es_master_bf16"):
            assert row[stage]["s_per_iteration"] > 0 and row[stage]["reply_tokens_per_s"] > 0
            assert row[stage]["x_flop_floor"] > 1  # nothing beats the floor
        assert row["grpo"]["seconds"] > 0  # TRL is installed here
        assert row["evaluation"]["probes"] == ["generative", "loglikelihood", "loglikelihood_norm"]
    assert not any(tmp_path.iterdir())  # the bases and runs are removed
