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

.PHONY: setup system-deps demo leaderboard test lint format clean

DEV_STAMP := $(VENV)/.robustfusion-dev-installed

# The demo's demonstration: static fusion beside one robust method (the one place to change them).
DEMO_METHODS ?= static,udml
DEMO_DATASET ?= mfeat
DEMO_OUT ?= runs/demo
DEMO_FLAGS ?= --modalities fou,mor --seeds 0,1,2 --quick
LEADERBOARD_OUT ?= runs/leaderboard

# torch and the package with its runtime dependencies only (what the demo needs).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install --disable-pip-version-check -e .
	@touch $(STAMP)

# ... plus the [dev] extras: test and lint tools, and the optional readers the tests exercise.
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -e ".[dev]"
	@touch $(DEV_STAMP)

setup: $(DEV_STAMP) system-deps

# espeak-ng synthesises the spoken digits of the avdigits dataset. Installed when we are root with
# apt-get; otherwise the tests that need it are skipped and say why.
# Two `make test` at once (CI beside another run) wait for each other here, so that neither tests
# against an espeak-ng the other is still unpacking.
system-deps:
	@if command -v flock >/dev/null 2>&1; then exec 9>"$${TMPDIR:-/tmp}/.robustfusion-system-deps.lock"; flock 9; fi; \
	if command -v espeak-ng >/dev/null 2>&1 && espeak-ng --version >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing espeak-ng (for the avdigits dataset)"; \
		(apt-get install -y -q espeak-ng >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q espeak-ng >/dev/null 2>&1)) || \
		echo "could not install espeak-ng: avdigits tests will be skipped"; \
	else echo "espeak-ng not found and not root: avdigits tests will be skipped (apt-get install espeak-ng)"; fi

# Trains DEMO_METHODS on DEMO_DATASET, evaluates them under noise and missing modalities and
# writes DEMO_OUT/report.md with its figures (resumable: a second run reuses the trained models).
demo: $(STAMP)
	$(BIN)/robustfusion benchmark --dataset $(DEMO_DATASET) --methods $(DEMO_METHODS) \
		$(DEMO_FLAGS) --out $(DEMO_OUT)
	@echo
	@sed -n '/^## Clean test accuracy/,/^## Accuracy vs severity/p' $(DEMO_OUT)/report.md | sed '$$d'
	@echo "report: $(DEMO_OUT)/report.md"
	@echo "figures: $$(ls $(DEMO_OUT)/figures/*.png | tr '\n' ' ')"

# Every method on mfeat, avdigits and fsdd_digits under every corruption (resumable; 1 h 25 min
# on an idle 2-core machine), then docs/results.md. See docs/benchmark.md.
leaderboard: $(STAMP) system-deps
	$(BIN)/robustfusion prepare avdigits
	$(BIN)/robustfusion benchmark --suite leaderboard --out $(LEADERBOARD_OUT) \
		--results-page docs/results.md

test: setup
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix src tests benchmarks scripts
	$(BIN)/ruff format src tests benchmarks scripts

clean:
	rm -rf runs .pytest_cache .ruff_cache
