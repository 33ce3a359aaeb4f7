# Two entry points: `make demo` and `make test`. Each creates .venv on first use and reinstalls when
# pyproject.toml changes.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint setup clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The web viewer ships MapLibre GL JS from the npm registry (no CDN at run time).
VIEWER := mapbuilder/serve/viewer
$(VIEWER)/vendor/maplibre-gl.js: $(VIEWER)/package.json $(VIEWER)/package-lock.json
	cd $(VIEWER) && npm ci --no-audit --no-fund --silent
	mkdir -p $(VIEWER)/vendor
	cp $(VIEWER)/node_modules/maplibre-gl/dist/maplibre-gl.js $(VIEWER)/node_modules/maplibre-gl/dist/maplibre-gl.css $(VIEWER)/node_modules/maplibre-gl/LICENSE.txt $(VIEWER)/vendor/
	touch $@

setup: $(BIN)/.installed $(VIEWER)/vendor/maplibre-gl.js

demo: setup
	$(BIN)/roadswarm demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests run the real face and plate models: fetch (or verify) their weights first.
test: lint
	$(BIN)/roadswarm models fetch
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
