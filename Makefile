# The verbs people type. `make demo` and `make test` install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ULTRALYTICS_VERSION := 8.4.190
STAMP := $(VENV)/.installed
# The lock (images/scripts/lock_requirements.py writes it from the tested venv): every install below
# is constrained to its versions, and images/requirements.txt is derived from it.
LOCK := constraints.txt
PIP_LOCKED = $(PIP) install -q -c $(LOCK)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-fast lint bench build push clean
.PHONY: run-preprocess run-train run-evaluate run-serve train-tree check-clean

setup: $(STAMP)

# Reinstalls only when the pinned requirements change, so a second `make setup` takes seconds.
$(STAMP): pyproject.toml Makefile $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) --upgrade pip setuptools wheel
	$(PIP_LOCKED) -e '.[train,pipeline,dev]'
	# sahi's own needs (it imports neither pybboxes nor terminaltables; pybboxes would pin numpy 1.24),
	# before the --no-deps installs: pip would otherwise warn that their unmet pins are unmet.
	$(PIP_LOCKED) "shapely>=2" fire click
	# Ultralytics without its deps: its requirements above, minus the GUI opencv build.
	$(PIP_LOCKED) --no-deps ultralytics==$(ULTRALYTICS_VERSION) sahi==0.12.8
	-$(PIP) uninstall -q -y opencv-python opencv-contrib-python 2>/dev/null
	$(PIP_LOCKED) --force-reinstall --no-deps "$$($(PIP) freeze | grep -i '^opencv-python-headless==')"
	$(PY) -c "import cv2, torch, ultralytics, albumentations; print('setup ok: torch', torch.__version__, 'ultralytics', ultralytics.__version__, 'cv2', cv2.__version__)"
	@touch $@

demo: setup
	$(PY) -m pipeline demo

test: setup
	$(PY) -m pytest -q -rfEs --durations=25

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not docker"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every benchmark once, ours beside its baseline, with random yolo11n weights where no WEIGHTS= is
# given (pass a trained .pt for meaningful agreement figures). ~30 min on 2 quiet cores.
BENCH_WEIGHTS = $(if $(WEIGHTS),--weights $(WEIGHTS))
bench: setup
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/predict.py $(BENCH_WEIGHTS)
	$(PY) benchmarks/sliced.py $(BENCH_WEIGHTS)
	$(PY) benchmarks/serve.py $(BENCH_WEIGHTS)

# ---- Container images (images/Dockerfile; see the README's "Container images") ----
# BASE_IMAGE: a CUDA PyTorch image with our torch (CI passes its local stand-in, images/base/).
# DOCKER: a client that can use BuildKit. OPT_ML: the /opt/ml tree that `make run-*` mounts.
DOCKER ?= docker
BASE_IMAGE ?= pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
IMAGES := preprocess train inference
IMAGE_PREFIX ?= drone-yolo-
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GIT_DIRTY := $(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo -dirty)
IMAGE_TAG ?= $(VERSION)-$(shell printf %.12s $(GIT_COMMIT))$(GIT_DIRTY)
REGISTRY ?=
OPT_ML ?= $(CURDIR)/opt_ml
PORT ?= 8080
ARGS ?=
DOCKER_RUN = images/scripts/docker-run-gpu.sh $(DOCKER) --rm --pull never --user $$(id -u):$$(id -g) --shm-size 8g
# Made by the caller before docker mounts it: a missing mount source would be created root-owned.
MAKE_OPT_ML = mkdir -p $(OPT_ML)

build:
	@set -e; for image in $(IMAGES); do \
	  echo "== $(IMAGE_PREFIX)$$image:$(IMAGE_TAG) on $(BASE_IMAGE)"; \
	  DOCKER_BUILDKIT=1 $(DOCKER) build --file images/Dockerfile --target $$image \
	    --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) \
	    --tag $(IMAGE_PREFIX)$$image:$(IMAGE_TAG) --tag $(IMAGE_PREFIX)$$image:latest . ; \
	done

# Only a committed tree: a -dirty tag names no commit, and ECR's immutable tags would keep the
# first such build forever. (check-clean comes before setup: a refused push installs nothing.)
check-clean:
	@if [ -n "$(GIT_DIRTY)" ]; then \
	  echo "error: make push: the tree has uncommitted changes (tag $(IMAGE_TAG)); commit, then make build push" >&2; \
	  exit 1; \
	fi

# To ECR (this account and region, from the usual AWS settings), or to REGISTRY=host[:port][/path].
# The tag pushed is recorded for `python -m pipeline upsert` (pipeline/pushed_images.py).
push: check-clean setup
	$(PY) images/scripts/push.py --tag $(IMAGE_TAG) --docker $(DOCKER) $(if $(REGISTRY),--registry $(REGISTRY)) \
	  $(if $(PUSHED_RECORD),--record $(PUSHED_RECORD)) \
	  $(addprefix $(IMAGE_PREFIX),$(IMAGES))

run-preprocess:
	$(MAKE_OPT_ML)/processing/input/data $(OPT_ML)/processing/output
	$(DOCKER_RUN) -v $(OPT_ML):/opt/ml $(IMAGE_PREFIX)preprocess:$(IMAGE_TAG) preprocess $(ARGS)

run-train:
	$(MAKE_OPT_ML)/input/config $(OPT_ML)/input/data $(OPT_ML)/model $(OPT_ML)/output $(OPT_ML)/checkpoints
	$(DOCKER_RUN) -v $(OPT_ML):/opt/ml $(IMAGE_PREFIX)train:$(IMAGE_TAG) train

run-evaluate:
	$(MAKE_OPT_ML)/processing/input $(OPT_ML)/processing/output $(OPT_ML)/output
	$(DOCKER_RUN) -v $(OPT_ML):/opt/ml $(IMAGE_PREFIX)train:$(IMAGE_TAG) evaluate $(ARGS)

run-serve:
	$(MAKE_OPT_ML)/model
	$(DOCKER_RUN) -v $(OPT_ML)/model:/opt/ml/model:ro -p 127.0.0.1:$(PORT):8080 $(IMAGE_PREFIX)inference:$(IMAGE_TAG) serve

# A training tree for `make run-train` from preprocess's dataset: DATASET=path/to/dataset, and
# HP="epochs=10 imgsz=640" for hyperparameters (the contract's layout, entrypoints/contract.py).
DATASET ?=
HP ?=
train-tree: setup
	@test -n "$(DATASET)" || { echo "error: make train-tree: give DATASET=path/to/dataset (with data.yaml)" >&2; exit 1; }
	$(PY) -m pipeline layout --dataset $(DATASET) --opt-ml $(OPT_ML) $(addprefix --hp ,$(HP))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(CI_OUT)

# ---- CI/CD: the steps of .github/workflows/*.yml and ci/buildspec-*.yml (README "CI/CD and governance") ----
# Any CI calls these after `make setup`; none of them installs anything. ENV: dev, staging or prod.
# MODEL_VERSION and REASON reach the commands as environment variables, never as Make text, so a
# workflow input cannot become shell code. TRACKING_URI: the MLflow store the registry resolves in.
ENV := dev# not ?=: a shell's own ENV (a startup file) must not pick the environment; ENV=... on the command line does
CI_OUT ?= .ci-out
TRACKING_URI ?=
HOLDOUT ?=
CI_TRACKING = $(if $(TRACKING_URI),--tracking-uri "$$TRACKING_URI")
CI_HOLDOUT = $(if $(HOLDOUT),--holdout "$$HOLDOUT")
export MODEL_VERSION REASON TRACKING_URI HOLDOUT
.PHONY: ci-env ci-lint ci-test ci-definition ci-build ci-push ci-upsert ci-start ci-deploy ci-promote ci-audit

# Checked by make before any shell sees it: ENV is pasted into the commands below.
ci-env:
	$(if $(filter-out dev staging prod,$(ENV))$(filter-out 1,$(words $(ENV))),$(error ENV: choose one of dev, staging, prod),@:)

# ruff; the workflows (actionlint, zizmor offline); the templates (cfn-lint); the IAM policies (parliament).
ci-lint: ci-env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/zizmor --offline --no-progress .github/workflows
	rm -rf $(CI_OUT)/templates
	$(PY) -m pipeline templates --env $(ENV) --out $(CI_OUT)/templates
	$(VENV)/bin/cfn-lint $(CI_OUT)/templates/*.json
	$(PY) tests/lint_policies.py --env $(ENV)

# The fast selection that gates a build (marker `ci`); the whole suite is `make test`.
ci-test:
	$(PY) -m pytest -q -m ci -p no:cacheprovider

ci-definition: ci-env
	$(PY) -m pipeline definition --env $(ENV) --out $(CI_OUT)/pipeline-$(ENV).json

ci-build:
	$(MAKE) build

ci-push:
	$(MAKE) push

ci-upsert: ci-env
	$(PY) -m pipeline upsert --env $(ENV)

ci-start: ci-env
	$(PY) -m pipeline start --env $(ENV) --display-name "ci-$${GITHUB_RUN_ID:-$${CODEBUILD_BUILD_NUMBER:-local}}"

# Staging, its tests (smoke, accuracy, latency: exit 1 refuses the version) and the environment's gate.
ci-deploy: ci-env
	@test -n "$$MODEL_VERSION" || { echo "error: make ci-deploy: give MODEL_VERSION (a version or package ARN)" >&2; exit 1; }
	$(PY) -m pipeline deploy --env $(ENV) --version "$$MODEL_VERSION" $(CI_TRACKING) $(CI_HOLDOUT)

# Production, once the manual gate (a protected environment, a CodePipeline approval) let the job run.
ci-promote: ci-env
	@test -n "$$MODEL_VERSION" || { echo "error: make ci-promote: give MODEL_VERSION" >&2; exit 1; }
	$(PY) -m pipeline promote --env $(ENV) --version "$$MODEL_VERSION" $(CI_TRACKING) \
	  --reason "$${REASON:-passed the manual gate of CI run $${GITHUB_RUN_ID:-$${CODEBUILD_BUILD_ID:-?}}}"

ci-audit: ci-env
	$(PY) -m pipeline audit --env $(ENV)
