# hfbot: the two commands a new user needs are `make run` and `make test`.
# The virtual environment is created on first use. torch comes from PyTorch's
# CPU index (about 190 MB, no CUDA packages); when that index cannot be reached
# in TORCH_PROBE_S seconds the default index is used instead (on Linux that is
# the CUDA build, several GB). A GPU machine names a CUDA index:
#   make run TORCH_INDEX=https://download.pytorch.org/whl/cu126

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS ?= constraints.txt
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PROBE_S ?= 5

.PHONY: run test bench clean

# torch goes in first, on its own, so the CPU (or CUDA) index is asked for torch
# and its few dependencies only; everything else comes from the default index,
# where torch is then already satisfied. The probe is one short HTTP request, as
# pip itself would retry an unreachable index for minutes; an index without a wheel
# for this machine falls back to the default index too.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ] && $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=float(sys.argv[2]))' '$(TORCH_INDEX)' '$(TORCH_PROBE_S)' 2>/dev/null; then \
		echo "torch from $(TORCH_INDEX)"; \
		$(BIN)/pip install --quiet --index-url '$(TORCH_INDEX)' $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) torch || \
			echo "$(TORCH_INDEX) has no torch for this machine: torch from the default package index instead"; \
	elif [ -n "$(TORCH_INDEX)" ]; then \
		echo "$(TORCH_INDEX) cannot be reached: torch from the default package index instead"; \
	fi
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
