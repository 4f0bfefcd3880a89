# hfbot: the two commands a new user needs are `make run` and `make test`.
# The virtual environment is created on first use; torch is pinned to the CPU
# build by constraints.txt (a GPU user installs their own torch first: see README).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS ?= constraints.txt

.PHONY: run test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hfbot run

test: $(STAMP)
	$(BIN)/ruff check bot handlers models migrations tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_pool --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_generation --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_media --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_media_out --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_chat --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_onnx --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_bot --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_soak --write
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench.bench_cold_start --write

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
