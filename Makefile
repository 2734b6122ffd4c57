# irisgate: `make run` serves on 127.0.0.1:8080; `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-agents lint typecheck unit services bench install clean ui

# Third-party dashboard assets: npm installs the pinned versions (ui/package-lock.json) and
# ui/vendor.py copies the needed files into the package's static folder (gitignored, never
# committed). The package build (setup.py) runs the same script when a file is missing.
VENDOR := src/irisgate/web/static/vendor
UI_STAMP := $(VENDOR)/.built

$(UI_STAMP): ui/package.json ui/package-lock.json ui/vendor.py
	$(PYTHON) ui/vendor.py

ui: $(UI_STAMP)

install: $(STAMP)

# Byte-compiled at install (pip's default) and irisgate's own source too: where
# PYTHONDONTWRITEBYTECODE is set (CI machines set it), nothing imported is cached otherwise, and
# every irisgate process the suite starts would compile SQLAlchemy, aiohttp … from source again.
$(STAMP): pyproject.toml | $(UI_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP) $(UI_STAMP)
	$(BIN)/irisgate serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench conftest.py
	$(BIN)/lint-imports  # the package layers in pyproject.toml (docs/architecture.md)

typecheck: $(STAMP)
	$(BIN)/mypy

# what the suite needs besides Python packages (each script skips what is already there)
services:
	scripts/ensure-postgres
	scripts/ensure-oauth-server
	scripts/ensure-chromium
	scripts/ensure-systemd-analyze

# The suite runs in PYTEST_WORKERS processes (pytest-xdist), a test file's tests in one of
# them, so that a module's shared servers are started once; most tests wait on the servers
# they start, so more processes than cores finish sooner. Fresh clones of one commit on a
# quiet 2-core machine (2,781 tests): 3 processes 8 min 32 s, 4 processes 8 min 19 s, and 4
# with the longest modules started first (`pytest.mark.early`, conftest.py) 7 min 19 s.
# PYTEST_WORKERS=0: the whole suite in the one pytest process
PYTEST_WORKERS ?= 4

unit: $(STAMP) $(UI_STAMP) services
	$(BIN)/python -m compileall -q src
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# installs and service checks side by side, then lint and typecheck beside the suite
test:
	$(MAKE) --no-print-directory -j3 install services
	$(MAKE) --no-print-directory -j3 lint typecheck unit

# The real coding agents (Claude Code, Codex, Gemini CLI, OpenCode) from npm at the versions
# pinned in tests/agents/package-lock.json, each run headless through irisgate against the fake
# vendors, once as the Agent Config page says and once through `irisgate launch`. Not part of
# `make test` (the install is about 400 MB); needs Node.js 20+ and npm.
AGENTS_STAMP := tests/agents/node_modules/.installed

# Not `npm ci`: npm leaves other platforms' opencode binaries out of the lock, and ci refuses
# such a lock; the versions are exact pins and --no-save keeps the lock as it is.
$(AGENTS_STAMP): tests/agents/package.json tests/agents/package-lock.json
	cd tests/agents && npm install --no-save --no-audit --no-fund
	touch $(AGENTS_STAMP)

test-agents: $(STAMP) $(UI_STAMP) $(AGENTS_STAMP)
	IRISGATE_TEST_AGENTS=1 $(BIN)/pytest tests/agents -v

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(VENDOR) ui/node_modules build dist *.egg-info src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
