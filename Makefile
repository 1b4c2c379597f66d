# Fresh machine: `make test` or `make demo` creates .venv and installs pinned versions first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install browser test test-fast demo lint bench clean gpu-check

# The pinned torch wheel is a CUDA build: the venv takes about 7 GB. Checked first, so that a full
# disk stops here with one line instead of leaving a half-installed venv behind.
NEED_GB := 8

$(STAMP): pyproject.toml
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4/1048576)}'); \
	if [ "$$free" -lt $(NEED_GB) ] && [ ! -d $(VENV)/lib ]; then \
		echo "error: $(CURDIR) has $$free GB free; installing .venv (torch's CUDA build) needs about $(NEED_GB) GB" >&2; \
		exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[dev,web,openvino]' $(TORCH_PINS)
	touch $(STAMP)

install: $(STAMP) browser

# `donkey serve`'s browser test drives Debian's chromium. Installed when missing and we are
# root with apt-get; otherwise nothing happens here and that test skips, saying why.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
		|| echo "chromium could not be installed: the browser test will skip"; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP) browser
	$(BIN)/donkey animate donkey/assets/sample/source.png donkey/assets/sample/driving.gif \
		-o demo/out.gif --side-by-side --mode relative --overwrite
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
