# irisgate: `make run` serves on 127.0.0.1:8080; `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench install clean ui

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Third-party dashboard assets: npm installs the pinned versions (ui/package-lock.json) and
# the needed files are copied into the package's static folder (gitignored, never committed).
VENDOR := src/irisgate/web/static/vendor
UI_STAMP := $(VENDOR)/.built

$(UI_STAMP): ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --silent
	mkdir -p $(VENDOR)
	cp ui/node_modules/uplot/dist/uPlot.esm.js $(VENDOR)/uPlot.esm.js
	cp ui/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/uPlot.min.css
	cp ui/node_modules/marked/lib/marked.esm.js $(VENDOR)/marked.esm.js
	cp ui/node_modules/dompurify/dist/purify.es.mjs $(VENDOR)/purify.es.mjs
	touch $(UI_STAMP)

ui: $(UI_STAMP)

run: $(STAMP) $(UI_STAMP)
	$(BIN)/irisgate serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(UI_STAMP)
	scripts/ensure-postgres
	scripts/ensure-oauth-server
	scripts/ensure-chromium
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(VENDOR) ui/node_modules build *.egg-info src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
