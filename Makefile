# botlab: `make demo` runs the main job on the virtual lab, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAB    ?= lab

.PHONY: install test test-unit test-lab lint demo demo-stop bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -ra

test-unit: install
	$(BIN)/python -m pytest -q -ra tests/unit

test-lab: install
	$(BIN)/python -m pytest -q -ra -m lab

lint: install
	$(BIN)/ruff check botlab tests
	$(BIN)/mypy botlab

demo: install
	BIN=$(BIN) LAB=$(LAB) bash scripts/demo.sh

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache bench/results
