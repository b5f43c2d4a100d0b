# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: demo test test-quick lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP) $@

demo: $(STAMP)
	$(BIN)/mloop demo

# Lint (ruff: errors, import order, style) and types (mypy) fail the build like a failing test.
lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src/mloop

typecheck: lint

# The browser tests run onnxruntime-web from mloop's cache: fetched once (checked against its pinned integrity) before they run.
ORTWEB := $(VENV)/.onnxruntime-web-1.30.0
$(ORTWEB): $(DEVSTAMP)
	$(BIN)/mloop edge assets
	touch $@

test: lint $(ORTWEB)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: lint $(ORTWEB)
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

# Evidently 0.7 needs pandas < 3: the drift benchmark runs it from a venv of its own.
EVENV := benchmarks/.venv-evidently
$(EVENV)/.installed:
	$(PYTHON) -m venv $(EVENV)
	$(EVENV)/bin/pip install --quiet "evidently==0.7.*" "pandas<3" pyarrow
	touch $@

# Feast 0.67 pins pandas < 3 as well: benchmarks/features.py runs it beside mloop from its own venv. The duckdb extra
# brings its DuckDB offline store (duckdb, ibis-framework); the file store and SQLite online store need nothing more.
FVENV := benchmarks/.venv-feast
$(FVENV)/.installed:
	$(PYTHON) -m venv $(FVENV)
	$(FVENV)/bin/pip install --quiet "feast[duckdb]==0.67.*"
	touch $@

# benchmarks/tuning.py runs Ray and Ray Tune, which come with the dev extra.
bench: $(DEVSTAMP) $(EVENV)/.installed $(FVENV)/.installed
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; OMP_NUM_THREADS=1 $(BIN)/python $$b || exit 1; done
	@echo "== benchmarks/features.py --online"; OMP_NUM_THREADS=1 $(BIN)/python benchmarks/features.py --online

clean:
	rm -rf $(VENV) $(EVENV) $(FVENV) .mloop build dist src/*.egg-info
