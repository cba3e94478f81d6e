"""The workflow with the e2e config, copied where a test runs it (as users run it: the
profiles come along, and profiles/default applies)."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.shared import REPO


def copy_e2e_workflow(root: Path) -> Path:
    shutil.copy(REPO / "Snakefile", root)
    for folder in ("workflow", "envs", "profiles"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "config").mkdir()
    shutil.copy(REPO / "tests" / "e2e" / "config.yaml", root / "config" / "config.yaml")
    return root


def run_workflow(root: Path) -> Path:
    """`snakemake --cores 2` in `root`, as users run it; fails the test with Snakemake's error."""
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "rules"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return root
