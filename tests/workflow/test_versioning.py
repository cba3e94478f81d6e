"""Versioned reruns as users make them: the e2e run in a git repository with the project's DVC
setup and its default remote (a folder next to the repository), saved and restored with
`python -m esforget.versioning`, checked from Snakemake's side (a dry run plans nothing) and on
the bytes (every restored file hashes as saved)."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.shared import REPO

pytestmark = pytest.mark.slow  # runs the e2e DAG: `pytest -m "not slow"` for a quick loop
# A committer for the repositories the tests make (CI machines may have no git identity).
GIT_ENV = {
    **os.environ,
    **{
        f"GIT_{who}_{what}": value
        for who in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "t"), ("EMAIL", "t@t"))
    },
}


def run(*command, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=GIT_ENV)
    assert not check or done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def versions(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "esforget.versioning", *args, cwd=cwd, check=check)


def planned(cwd: Path) -> str:
    return run(sys.executable, "-m", "snakemake", "--cores", "1", "-n", cwd=cwd).stdout


def hashes(root: Path) -> dict[str, str]:
    """sha256 of every file DVC versions (its .dvcignore applied: no locks, no work folders)."""
    found = {}
    for folder in ("data", "results"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path.name != "train.lock" and "partial" not in path.parts:
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def git_repo(root: Path) -> None:
    """The project's git and DVC setup around a workflow folder, committed."""
    for name in (".gitignore", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (root / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, root / name)
    run("git", "init", "--quiet", "--initial-branch", "main", cwd=root)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "--quiet", "-m", "workflow", cwd=root)


@pytest.fixture(scope="module")
def saved(e2e_run, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The e2e run in a git repo, saved once: (repository, hashes of what was saved)."""
    repo = tmp_path_factory.mktemp("versions") / "repo"
    shutil.copytree(e2e_run, repo, symlinks=True)  # file times kept: Snakemake sees the run as done
    git_repo(repo)
    assert "saved as" in versions("save", "-m", "v1", cwd=repo).stdout
    return repo, hashes(repo)


def test_a_saved_version_is_current_for_snakemake_and_dvc(saved):
    repo, _ = saved
    assert "Nothing to be done" in planned(repo)
    assert "up to date" in run(sys.executable, "-m", "dvc", "status", cwd=repo).stdout
    assert run("git", "status", "--porcelain", cwd=repo).stdout == ""  # the .dvc files committed
    assert {"data.dvc", "results.dvc"} <= set(run("git", "ls-files", cwd=repo).stdout.split())
    assert (repo.parent / "esforget-dvc-remote").is_dir()  # the default remote, next to the repo


def test_a_fresh_clone_restores_the_saved_bytes_with_nothing_to_do(saved):
    repo, saved_hashes = saved
    clone = repo.parent / "clone"
    run("git", "clone", "--quiet", str(repo), str(clone), cwd=repo.parent)
    assert "snakemake plans 0 job(s)" in versions("restore", cwd=clone).stdout
    assert "Nothing to be done" in planned(clone)
    assert hashes(clone) == saved_hashes


def test_an_older_version_comes_back_with_its_outputs_and_nothing_to_do(saved):
    repo, v1 = saved
    config = repo / "config" / "config.yaml"
    edited = yaml.safe_load(config.read_text())
    edited["methods"]["es"]["sigma"] = 0.2
    config.write_text(yaml.safe_dump(edited))
    refused = versions("save", "-m", "v2", cwd=repo, check=False)
    assert refused.returncode == 1 and "config/config.yaml" in refused.stderr  # uncommitted config
    run("git", "commit", "--quiet", "-am", "es: sigma 0.2", cwd=repo)
    refused = versions("save", "-m", "v2", cwd=repo, check=False)
    assert refused.returncode == 1 and "Snakemake has 4 job(s) to run" in refused.stderr
    run(sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", cwd=repo)
    versions("save", "-m", "v2", cwd=repo)
    v2 = hashes(repo)
    changed = {path for path in v1 if v1[path] != v2.get(path)}
    assert changed and all("/es/" in path or path.startswith("results/report") for path in changed)

    assert "snakemake plans 0 job(s)" in versions("restore", "HEAD~2", cwd=repo).stdout
    assert hashes(repo) == v1 and "Nothing to be done" in planned(repo)
    assert "snakemake plans 0 job(s)" in versions("restore", "main", cwd=repo).stdout
    assert hashes(repo) == v2 and "Nothing to be done" in planned(repo)


def test_restoring_outputs_another_config_made_stops_naming_the_run_and_key(saved, tmp_path):
    repo, _ = saved
    (tmp_path / "change.yaml").write_text("methods: {grpo: {learning_rate: 0.5}}\n")
    refused = versions(
        "restore", "--configfile", "config/config.yaml", str(tmp_path / "change.yaml"), cwd=repo, check=False
    )
    assert refused.returncode == 1
    assert "/grpo/countdown-" in refused.stderr and "learning_rate=" in refused.stderr
    assert "(config: 0.5)" in refused.stderr


def test_the_default_profiles_data_is_the_data_dvc_records(tmp_path):
    """A fresh `prepare_data` of the default profile makes exactly the bytes `data.dvc` versions."""
    root = tmp_path / "default"
    for name in ("Snakefile", "data.dvc"):
        (root / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, root / name)
    for folder in ("workflow", "config", "profiles", "envs"):
        shutil.copytree(REPO / folder, root / folder)
    git_repo(root)
    run(sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "--until", "prepare_data", cwd=root)
    run(sys.executable, "-m", "dvc", "add", "data", cwd=root)
    assert (root / "data.dvc").read_text() == (REPO / "data.dvc").read_text(), (
        "the same frames in other bytes usually mean another polars (its writer's version is in"
        " the file): pinned in pyproject.toml; after an upgrade, re-record with `dvc add data`"
    )


def test_saving_with_a_declared_output_missing_is_refused_naming_it(e2e_run, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(e2e_run, repo, symlinks=True)
    git_repo(repo)
    lost = next(repo.glob("results/*/grpo/*/seed0/checkpoints"))
    shutil.rmtree(lost)  # what a job killed after its downstream tables were written leaves
    refused = versions("save", "-m", "incomplete", cwd=repo, check=False)
    assert refused.returncode == 1
    assert "output(s) the workflow declares are missing" in refused.stderr
    assert str(lost.relative_to(repo)) in refused.stderr
    assert not (repo / "results.dvc").exists()  # nothing versioned


def test_missing_outputs_are_read_from_snakemakes_summary_table(tmp_path):
    from esforget.versioning import missing_in_summary

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "kept.parquet").write_text("x")
    summary = (
        "Building DAG of jobs...\n"
        "output_file\tdate\trule\tlog-file(s)\tstatus\tplan\n"
        "results/kept.parquet\tMon Dec  7 15:31:37 2026\tevaluate\t-\tok\tno update\n"
        "results/lost/checkpoints\t-\ttrain\t-\tmissing\tupdate pending\n"
    )
    assert missing_in_summary(summary, tmp_path) == ["results/lost/checkpoints"]
