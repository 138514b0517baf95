# Feldspar's recipes. `make chat` and `make test` are the README's quickstart; CI runs
# `make test` from a clean checkout.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUESTION ?= Name three primary colors.

# llama-cpp-python compiles from source. A native build uses every instruction the CPU
# advertises, and some CPUs advertise AMX they cannot run (SIGILL); this portable build
# runs on any x86-64 CPU with AVX2. pip caches the built wheel, so it compiles once.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
export CMAKE_ARGS

.PHONY: serve chat install install-test test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[all]"

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[all,test]"

# The page and the API on http://127.0.0.1:8000/, with a collection made from these docs.
serve: install
	$(BIN)/feldspar ingest README.md docs --collection feldspar-docs
	$(BIN)/feldspar serve

chat: install
	$(BIN)/feldspar chat "$(QUESTION)"

test: install-test
	$(BIN)/feldspar doctor
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: install-test
	$(BIN)/pip install --quiet -e ".[all,test,bench]"
	$(BIN)/python bench/run_all.py

docs: install
	$(BIN)/python -m feldspar.cli.docs > docs/cli.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
