# mailstead: `make serve` runs the server on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
# `make test` runs the suite with pytest-xdist, one worker per core, each test file whole on
# one worker (decision 0032). JOBS=4 sets the count; JOBS=0 runs in this one process, serially,
# quicker for one file and needed for --pdb: make test JOBS=0 ARGS="tests/imap/test_imap_idle.py"
JOBS   ?= auto

.PHONY: serve test lint typecheck bench bench-quick bench-peers docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime install for `serve`; the dev extras (test tools) for everything else.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(BIN)/mailstead serve $(ARGS)

test: $(VENV)/.dev
	$(BIN)/pytest -n $(JOBS) --dist loadfile $(ARGS)

# ruff, and the layer rules of ARCHITECTURE.md (import-linter contracts in pyproject.toml).
lint: $(VENV)/.dev
	$(BIN)/ruff check mailstead tests bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev
	$(BIN)/mypy

docs: $(VENV)/.dev
	$(BIN)/python -m mailstead.config.docs

bench: $(VENV)/.dev
	$(BIN)/python -m bench.run $(ARGS)

bench-quick: $(VENV)/.dev
	$(BIN)/python -m bench.run --quick $(ARGS)

# Peers (Postfix, Dovecot) come from Debian; this target installs them if missing.
bench-peers: $(VENV)/.dev
	bash bench/peers.sh
	$(BIN)/python -m bench.run --peers $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
