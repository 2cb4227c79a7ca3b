# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test lint format bench clean venv examples example-ai-factory openapi
.PHONY: docker-engine docker-base docker-trainer-image docker-images docker-sagemaker-sdk

venv: $(STAMP) $(BIN)/aifactory

$(STAMP): requirements.txt requirements-dev.txt containers/trainer/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The `aifactory` CLI (pyproject.toml [project.scripts]), installed editable: its dependencies
# are pinned in requirements-dev.txt, so no build isolation and no dependency resolution here.
$(BIN)/aifactory: $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

run: $(STAMP) $(BIN)/aifactory
	PORT=$(PORT) AIFACTORY_STAGE=local $(BIN)/python -m chalicelib.entrypoints.local_server

# The whole suite on a fresh machine: scripts/test-deps.sh first installs or starts what the
# tests need (chromium, a Docker engine and the images) where the machine allows; what it
# cannot have is a loud line and a skip.
# The suite runs on every core (pytest-xdist; a file's tests share one worker, tests/conftest.py),
# then the few tests that assert wall-clock deadlines run alone (`serial`). TEST_WORKERS=0 runs
# it all in one process; plain `pytest` still runs everything. At most 4 workers by default:
# each holds torch and starts trainers and servers of its own (about 1.5 GB at its peak).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)
test: $(STAMP) $(BIN)/aifactory
	bash scripts/test-deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not serial"
	$(BIN)/python -m pytest -q -m serial

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .

# The OpenAPI document of every route, from the registered app and the contracts tables.
openapi: $(STAMP)
	$(BIN)/python -m chalicelib.openapi docs/openapi.json

bench: $(STAMP)
	$(BIN)/python bench/bench_api.py
	$(BIN)/python bench/bench_fetcher.py

# Every CUDA path in one table (scripts/gpu_check.py, docs/benchmarks.md) with a plain python3
# that holds torch, no venv (the GPU machine's own); without CUDA it runs them on the CPU at a
# tiny size. GPU_CHECK_ARGS: e.g. "--json out.json --strict", "--only inference".
.PHONY: gpu-check
gpu-check:
	PYTHONPATH=containers/trainer:containers/inference:.$(if $(PYTHONPATH),:$(PYTHONPATH)) $(PYTHON) scripts/gpu_check.py $(GPU_CHECK_ARGS)

examples: $(STAMP)
	for task in classification detection instance_segmentation; do \
	  PYTHONPATH=containers/trainer $(BIN)/python -m trainer.vision.synthetic --task $$task \
	    --out examples/$$task --num-images 60 --image-size 64; done

example-ai-factory: $(STAMP)  # ARGS=--use-running: against the API `make run` started (the dashboard shows the job)
	$(BIN)/python scripts/example_ai_factory.py $(ARGS)

clean:
	rm -rf $(VENV) .aifactory .pytest_cache .ruff_cache

# A Docker engine (Debian's docker.io, dockerd started as root), the base image built from
# Debian's packages (no image registry is reachable here) and the images built on it; the
# dependency layer is cached until a requirements file changes (scripts/docker/README.md).
LOCAL_BASE_IMAGE ?= aifactory-base:bookworm

docker-engine:
	bash scripts/docker/engine.sh

docker-base: docker-engine
	bash scripts/docker/base-image.sh $(LOCAL_BASE_IMAGE)

docker-trainer-image: $(STAMP) docker-base
	$(BIN)/python scripts/docker/build_images.py --base-image $(LOCAL_BASE_IMAGE) trainer

docker-images: $(STAMP) docker-base
	$(BIN)/python scripts/docker/build_images.py --base-image $(LOCAL_BASE_IMAGE) trainer inference

# One stage on AWS (infra/README.md): stack, images, Chalice, API key, smoke test. The region
# and credentials are the caller's (AWS_REGION / AWS_PROFILE). DATA_ROOTS: s3:// prefixes v1.5
# data_dir may name; IMAGE_TAG: override the git tag; BASE_IMAGE: build on an AWS PyTorch DLC.
STAGE ?= dev
DEPLOY := PYTHONPATH=infra/bin $(BIN)/python -m aifactory_deploy

.PHONY: deploy destroy
deploy: $(STAMP)
	$(DEPLOY) deploy --stage $(STAGE)

destroy: $(STAMP)
	$(DEPLOY) destroy --stage $(STAGE)

# The SageMaker Python SDK (local mode) for tests/docker, in its own virtualenv, and the
# docker compose its local mode drives.
SAGEMAKER_VENV := build/sagemaker-venv

docker-sagemaker-sdk: $(SAGEMAKER_VENV)/.installed

$(SAGEMAKER_VENV)/.installed: tests/docker/requirements-sagemaker.txt
	command -v docker-compose >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null)
	test -x $(SAGEMAKER_VENV)/bin/python || $(PYTHON) -m venv $(SAGEMAKER_VENV)
	$(SAGEMAKER_VENV)/bin/python -m pip install --quiet --upgrade "pip>=25"
	$(SAGEMAKER_VENV)/bin/python -m pip install --quiet -r tests/docker/requirements-sagemaker.txt
	touch $@
