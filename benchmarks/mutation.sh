#!/usr/bin/env bash
# Mutation score of the modules the study's numbers come from (see benchmarks/mutation.py).
# Needs the `mutation` extra: .venv/bin/pip install -e ".[test,mutation]" -c constraints/cpu.txt
set -euo pipefail
cd "$(dirname "$0")/.."
# Workers are forked two at a time: one torch thread each keeps them from fighting for cores.
export OMP_NUM_THREADS=1
# Processes the tests start (torchrun workers, snakemake) import the installed, unmutated package:
# mutmut's trampolines only work in its own process tree and working directory, and it records
# which tests reach a function in-process only, so a mutant is judged by in-process code.
# The tests run from mutants/, one folder deeper: point them at the authors' splits.
export ESFORGET_PAPER_DATA="${ESFORGET_PAPER_DATA:-$(cd .. && pwd)/shared/paper-data}"
exec "${PYTHON:-.venv/bin/python}" benchmarks/mutation.py "$@"
