# One command each: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE := $(VENV)/.installed-core

.PHONY: test demo lint typecheck bench install clean

# The demo needs only the core (SQLite is in the standard library); tests need every extra.
$(CORE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

$(STAMP): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(CORE)
	$(BIN)/sqlfence demo

lint: $(STAMP)
	$(BIN)/ruff check sqlfence tests benchmarks
	$(BIN)/ruff format --check sqlfence tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/bird.py
	$(BIN)/python benchmarks/audit.py
	$(BIN)/python benchmarks/sandbox.py
	$(BIN)/python benchmarks/pool.py
	$(BIN)/python benchmarks/mcp_load.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .sqlfence
