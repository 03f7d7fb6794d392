# The README's commands. Everything installs into .venv with the exact pins of constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench lint install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/wattless demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

fuzz: $(STAMP)
	WATTLESS_FUZZ_PROFILE=long $(BIN)/python -m pytest -n 2 -q tests/fuzz

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[hw,hf]"
	WATTLESS_DATA=$${WATTLESS_DATA:-$(abspath ../shared/data)} $(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
