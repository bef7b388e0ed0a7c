# One-command set-up, demo and tests. Everything runs inside .venv, created on first use.
#
# GPU users: create .venv yourself and install the torch build for your CUDA version first
# (https://pytorch.org/get-started/locally/), e.g.
#     python3 -m venv .venv && .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu124
# then run `make setup`: an existing torch in .venv is kept as it is.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.robustfusion-installed

.PHONY: setup system-deps demo test lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) system-deps

# espeak-ng synthesises the spoken digits of the avdigits dataset. Installed when we are root with
# apt-get; otherwise the tests that need it are skipped and say why.
system-deps:
	@if command -v espeak-ng >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing espeak-ng (for the avdigits dataset)"; \
		(apt-get install -y -q espeak-ng >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q espeak-ng >/dev/null 2>&1)) || \
		echo "could not install espeak-ng: avdigits tests will be skipped"; \
	else echo "espeak-ng not found and not root: avdigits tests will be skipped (apt-get install espeak-ng)"; fi

demo: setup
	$(BIN)/robustfusion train --dataset mfeat --method static --epochs 30 --seed 0 --out runs/demo
	$(BIN)/robustfusion evaluate runs/demo --corruption gaussian --target all \
		--severities 0,0.5,1,1.5,2,3 --out runs/demo/robustness_gaussian.json

test: setup
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks scripts
	$(BIN)/ruff format src tests benchmarks scripts

clean:
	rm -rf runs .pytest_cache .ruff_cache
