# Two set-up commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo

.PHONY: run scores test bench lint typecheck pytest env clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

run: $(STAMP)
	@test -f $(DEMO)/funnelwise.duckdb || { $(BIN)/funnelwise demo $(DEMO) && $(MAKE) --no-print-directory scores; }
	@echo "Demo project: $(DEMO)  (rebuild with: $(BIN)/funnelwise demo $(DEMO) --force)"
	$(BIN)/funnelwise --project $(DEMO) info
	$(BIN)/funnelwise --project $(DEMO) report -o $(DEMO)/report.html
	@echo "Open the report in a browser: $(DEMO)/report.html"

# Score the demo's open deals and leads (stored with the model; the report lists them).
scores: $(STAMP)
	$(BIN)/funnelwise --project $(DEMO) score train --target won
	$(BIN)/funnelwise --project $(DEMO) score apply --target won --format csv > $(DEMO)/deal-scores.csv
	$(BIN)/funnelwise --project $(DEMO) score train --target converted
	$(BIN)/funnelwise --project $(DEMO) score apply --target converted --format csv > $(DEMO)/lead-scores.csv

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
