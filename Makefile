# Fresh machine: `make test` or `make demo` creates .venv and installs pinned versions first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-fast demo lint bench clean gpu-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[dev]' $(TORCH_PINS)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/donkey animate donkey/assets/sample/source.png donkey/assets/sample/driving.gif \
		-o demo/out.gif --side-by-side --mode relative
	@echo "demo written: $(CURDIR)/demo/out.gif"

lint: $(STAMP)
	$(BIN)/ruff check donkey tests

bench: $(STAMP)
	$(BIN)/donkey bench --config configs/small.yaml --engine torch,ort --batch-sizes 1,8,32

# NVIDIA GPU machine: gpu-marked tests + `donkey bench` of every installed engine ->
# benchmarks/gpu-<gpu>.json, < 10 min. Runs from the source tree, no .venv needed
# (`make gpu-check PYTHON=.venv/bin/python` to use the project's environment).
gpu-check:
	PYTHONPATH=$(CURDIR) $(PYTHON) scripts/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache
