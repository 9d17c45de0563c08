# The commands behind the README. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-quick lint browser proxy bench bench-neo4j bench-fraudar neo4j clean

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
	$(BIN)/ruff check ringscope tests benchmarks tools/render_policy.py
	$(BIN)/ruff format --check ringscope tests benchmarks tools/render_policy.py
	$(BIN)/mypy

# Debian's Chromium for the browser tests (driven by Playwright; no browser download).
CHROMIUM := /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Debian's nginx, which tests/security/ runs with its own configuration in front of
# `ringscope serve` (on a machine with systemd the package also starts its default site).
NGINX := /usr/sbin/nginx
proxy:
	@test -x $(NGINX) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx)

test: lint browser proxy
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/load.py

bench-neo4j: setup
	$(BIN)/python benchmarks/neo4j_load.py $(ARGS)

# ringscope's FRAUDAR beside UGFraud's, in a separate virtualenv so UGFraud never enters $(VENV).
CMP_VENV := .venv-compare
$(CMP_VENV)/.installed: pyproject.toml benchmarks/requirements-compare.txt
	@test -x $(CMP_VENV)/bin/python || $(PYTHON) -m venv $(CMP_VENV)
	$(CMP_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CMP_VENV)/bin/python -m pip install --quiet -e . -r benchmarks/requirements-compare.txt
	@touch $@

bench-fraudar: $(CMP_VENV)/.installed
	$(CMP_VENV)/bin/python benchmarks/fraudar_compare.py $(ARGS)

# A local Neo4j 5.26 Community from Maven Central jars (Java 17 + Maven); Ctrl-C stops it.
neo4j: setup
	$(BIN)/python -m ringscope.graphs.neo4j_local --work-dir var --port 7687

# The tests that need no Neo4j server.
test-quick: lint
	$(BIN)/pytest -m "not neo4j" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(CMP_VENV) var .pytest_cache .mypy_cache .ruff_cache
