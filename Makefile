# The commands behind the README. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint bench neo4j clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded store: sample marketplace -> load -> detect -> queue -> app.
run: setup
	$(BIN)/ringscope run $(ARGS)

lint: setup
	$(BIN)/ruff check ringscope tests benchmarks
	$(BIN)/ruff format --check ringscope tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
