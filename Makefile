# tierserve: `make serve` runs the stack on the embedded default, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/default.yaml
STAMP  := $(VENV)/.tierserve-installed
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install models serve test test-fast lint fuzz bench loadtest chaos clean

$(STAMP): requirements-cpu.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet --no-deps -r requirements-cpu.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP)

models: $(STAMP)
	$(BIN)/tierserve models prepare --config $(CONFIG)

serve: models
	$(BIN)/tierserve serve --config $(CONFIG)

test: $(STAMP)
	$(BIN)/tierserve models prepare --config configs/test.yaml
	$(BIN)/python -m pytest -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow"

fuzz: $(STAMP)  # schemathesis on the gateway's OpenAPI document, positive and negative data: >= 10,000 cases, 0 5xx
	TIERSERVE_FUZZ_EXAMPLES=600 $(BIN)/python -m pytest -q -s tests/unit/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/tierserve models prepare --config configs/default.yaml
	$(BIN)/python -m benchmarks.bench --config configs/default.yaml

loadtest: models  # the SLO gate on the embedded default (starts and stops the stack)
	$(BIN)/tierserve loadtest --config $(CONFIG) --scenario chat --users 4 --duration 60s

chaos: models  # the chaos runs of make test with 3-minute loads (docs/reliability.md)
	$(BIN)/tierserve models prepare --config configs/test.yaml
	TIERSERVE_CHAOS_DURATION_S=180 $(BIN)/python -m pytest -ra tests/e2e/test_chaos.py

clean:
	rm -rf $(VENV) .tierserve .pytest_cache .mypy_cache .ruff_cache
