"""What made a report: read back from a git checkout, manifests and benchmark files."""

import json
import subprocess

import pytest
import torch

from esforget.core.models import device_name
from esforget.report import made_by


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_the_commit_and_whether_tracked_files_changed_since(tmp_path, tmp_path_factory):
    git(tmp_path, "init", "-q")
    (tmp_path / "Snakefile").write_text("rule all:\n")
    git(tmp_path, "add", "Snakefile")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "results.txt").write_text("untracked outputs do not make the tree dirty")
    assert made_by.git_state(tmp_path) == {"commit": head, "dirty": False, "changed": []}
    (tmp_path / "Snakefile").write_text("rule all:\n    input: []\n")
    assert made_by.git_state(tmp_path)["dirty"] is True
    assert (
        made_by.git_state(tmp_path / "..")["commit"] == "not a git checkout"
        or tmp_path.parent.joinpath(".git").exists()
    )


def test_data_hashes_come_from_the_manifests(tmp_path):
    folder = tmp_path / "countdown-1a2b3c4d"
    folder.mkdir()
    splits = {"train": {"rows": 5, "sha256": "aa"}, "test": {"rows": 2, "sha256": "bb"}}
    (folder / "manifest.json").write_text(json.dumps({"seed": 1, "source": {}, "splits": splits}))
    table = made_by.data_hashes([folder / "manifest.json"])
    assert table.rows() == [("countdown-1a2b3c4d", "train", 5, "aa"), ("countdown-1a2b3c4d", "test", 2, "bb")]


def test_stage_times_read_every_jobs_benchmark_file(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "tiny-1" / "base").mkdir(parents=True)
    (tmp_path / "tiny-1" / "base" / "prepare_base_model.tsv").write_text(
        header + "217.5\t0:03:37\t812.1\t0\t0\t0\t0\t0\t190\t400\n"
    )
    times = made_by.stage_times(tmp_path)
    assert times.rows() == [("tiny-1/base/prepare_base_model", 217.5, pytest.approx(812.1))]


def test_package_versions_name_the_ones_that_decide_numbers():
    versions = made_by.package_versions()
    assert {"python", "torch", "transformers", "trl", "polars"} <= set(versions)


def test_a_cpu_is_named_with_the_instruction_set_its_kernels_round_with():
    # AVX2 and AVX-512 kernels round differently: a run's numbers are only reproducible on
    # CPUs whose kernels match, so the recorded device must say which ones ran.
    name = device_name("cpu")
    assert name.startswith("cpu (") and name.endswith(f", {torch.backends.cpu.get_cpu_capability()} kernels)")
