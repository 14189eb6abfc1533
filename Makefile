# Two set-up commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo

.PHONY: run test bench lint typecheck pytest env clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

run: $(STAMP)
	@test -f $(DEMO)/funnelwise.duckdb || $(BIN)/funnelwise demo $(DEMO)
	@echo "Demo project: $(DEMO)  (rebuild with: $(BIN)/funnelwise demo $(DEMO) --force)"
	$(BIN)/funnelwise --project $(DEMO) info
	$(BIN)/funnelwise --project $(DEMO) report -o $(DEMO)/report.html
	@echo "Open the report in a browser: $(DEMO)/report.html"

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
