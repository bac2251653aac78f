# The verbs people type. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ULTRALYTICS_VERSION := 8.4.190
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-fast lint bench build push clean

setup: $(STAMP)

# Reinstalls only when the pinned requirements change, so a second `make setup` takes seconds.
$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[train,pipeline,dev]'
	# Ultralytics without its deps: its requirements above, minus the GUI opencv build.
	$(PIP) install -q --no-deps ultralytics==$(ULTRALYTICS_VERSION) sahi==0.12.8
	# sahi's own needs (it imports neither pybboxes nor terminaltables; pybboxes would pin numpy 1.24).
	$(PIP) install -q "shapely>=2" fire click
	-$(PIP) uninstall -q -y opencv-python opencv-contrib-python 2>/dev/null
	$(PIP) install -q --force-reinstall --no-deps "$$($(PIP) freeze | grep -i '^opencv-python-headless==')"
	$(PY) -c "import cv2, torch, ultralytics, albumentations; print('setup ok: torch', torch.__version__, 'ultralytics', ultralytics.__version__, 'cv2', cv2.__version__)"
	@touch $@

demo: setup
	$(PY) -m pipeline demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not docker"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/preprocess.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
