"""The workflow with the e2e config, copied where a test runs it (as users run it: the
profiles come along, and profiles/default applies)."""

import shutil
from pathlib import Path

from tests.shared import REPO


def copy_e2e_workflow(root: Path) -> Path:
    shutil.copy(REPO / "Snakefile", root)
    for folder in ("workflow", "envs", "profiles"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "config").mkdir()
    shutil.copy(REPO / "tests" / "e2e" / "config.yaml", root / "config" / "config.yaml")
    return root
