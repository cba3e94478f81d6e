"""Write envs/esforget.yaml from pyproject.toml, so that the conda environment of the rules
and the package's dependencies are one list.

    python envs/make_env.py           # rewrite envs/esforget.yaml
    python envs/make_env.py --check   # exit 1 if it is out of date (the tests run this)

Why generated rather than `pip: [-e ..]`: Snakemake copies an env file to
`.snakemake/conda/<hash>.yaml` before `conda env create --file`, so a relative path in it
resolves inside `.snakemake/`, never to the repository. The environment therefore lists the
dependencies itself, and the rules' scripts find the package in the repository's `src/`.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = ROOT / "envs" / "esforget.yaml"
PYTHON = "3.11"
"""The Python of the environment (pyproject's `requires-python` lower bound)."""


def environment() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["gguf"]
    lines = [
        "# Conda environment for `snakemake --sdm conda`. Generated from pyproject.toml by",
        "# envs/make_env.py: do not edit, run `python envs/make_env.py`. The package itself is",
        "# not installed here (no path in this file can reach the repository once Snakemake has",
        "# copied it); the rules' scripts import it from the repository's src/.",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        f"  - python={PYTHON}",
        "  - pip",
        "  - pip:",
        *(
            f"      - {requirement!r}" if ">" in requirement or "<" in requirement else f"      - {requirement}"
            for requirement in requirements
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    wanted = environment()
    if "--check" in sys.argv[1:]:
        if ENV.read_text() != wanted:
            sys.exit(f"{ENV} is out of date with pyproject.toml: run `python envs/make_env.py`")
    else:
        ENV.write_text(wanted)
