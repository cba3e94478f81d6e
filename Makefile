# Two commands on a fresh machine (Debian, Python 3.11, pip; no GPU needed):
#   make run    create .venv, install, run the default profile end to end
#   make test   create .venv, install, run the test suite
#   make lint   ruff (lint and format), snakefmt and `snakemake --lint`, as CI runs them
# GPU machines: `make run CONSTRAINTS=` installs the regular (CUDA) torch instead of the
# CPU build pinned in constraints/cpu.txt.

VENV ?= .venv
PYTHON ?= python3
CONSTRAINTS ?= -c constraints/cpu.txt
BIN := $(VENV)/bin

.PHONY: setup run test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e ".[test]"
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

clean:
	rm -rf results logs .snakemake
