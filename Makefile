# The README's commands. Everything installs into .venv with the exact pins of constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench lint install clean nncodec-env

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

bench: $(STAMP) nncodec-env
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[hw,hf]"
	WATTLESS_DATA=$${WATTLESS_DATA:-$(abspath ../shared/data)} $(BIN)/python benchmarks/run.py

# NNCodec (MPEG NNC reference codec) for benchmarks/nncodec.py, in its own environment outside the checkout:
# it needs numpy<2 and builds a C++ extension. Its install_requires (torch, torchvision, opencv, ...) serve only
# its model loaders, which the benchmark's worker stubs out, hence --no-deps.
NNC_VENV ?= $(abspath ../nnc-venv)
NNC_PYTHON ?= python3.11

nncodec-env:
	test -x $(NNC_VENV)/bin/python || $(NNC_PYTHON) -m venv $(NNC_VENV)
	$(NNC_VENV)/bin/python -m pip install --quiet numpy==1.26.4 pybind11==2.13.6 setuptools==75.8.0 wheel==0.45.1
	$(NNC_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation --no-binary nncodec nncodec==2.1.3

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
