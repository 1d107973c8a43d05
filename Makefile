# Two commands do everything on a fresh machine with Python 3.10:
#   make run    set up, then run the full pipeline on official CIFAR-10 (downloaded if not cached)
#   make test   set up, then run the test suite (make test-fast: all but the slow tests)
# PROFILE, ARGS and PYTHON can be overridden: make run PROFILE=smoke ARGS="--data-dir D"
# GPU=1 installs TensorFlow's CUDA libraries (the `gpu` extra), GPU=0 leaves them out;
# by default they are installed when `nvidia-smi -L` lists a GPU.

PYTHON ?= python3.10
PROFILE ?= full
ARGS ?=
UV = $(PYTHON) -m uv
# Optional extras to install: airflow (the Airflow DAG), kubeflow (compiling for
# Kubeflow Pipelines v2 / Vertex). The tests exercise both, so `make test` adds them.
EXTRAS ?=
TEST_EXTRAS = --extra airflow --extra kubeflow
GPU ?= $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU' && echo 1 || echo 0)
GPU_EXTRA = $(if $(filter 1,$(GPU)),--extra gpu,)

.PHONY: setup load-generator run test test-fast benchmark serve

# uv resolves TFX 1.16's dependency set in seconds (pip's resolver does not finish);
# --frozen installs exactly what uv.lock pins.
setup:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore uv
	$(UV) sync --frozen $(GPU_EXTRA) $(EXTRAS)

# wrk (Debian package) drives the sustained-load test (tests/serving/test_load.py,
# benchmarks/load_test.py). Installed with apt-get when absent and apt-get can run
# (root); otherwise the test is skipped and says why.
load-generator:
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing wrk for the load test: apt-get install -y wrk"; \
		apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } || \
		echo "apt-get could not install wrk: the load test will be skipped"; \
	else \
		echo "wrk is not installed and apt-get cannot run here: the load test will be skipped"; \
	fi

run: setup
	$(UV) run --frozen $(GPU_EXTRA) $(EXTRAS) python -m pipeline run --profile $(PROFILE) $(ARGS)

# The tests run on the CPU and need no CUDA library; on a GPU machine the gpu extra
# stays installed so that `make run` and `make test` do not undo each other.
test: EXTRAS = $(TEST_EXTRAS)
test: setup load-generator
	$(UV) run --frozen $(GPU_EXTRA) $(EXTRAS) pytest $(ARGS)

# The inner loop: every test not marked slow (no whole pipeline runs or server processes).
test-fast: EXTRAS = $(TEST_EXTRAS)
test-fast: setup
	$(UV) run --frozen $(GPU_EXTRA) $(EXTRAS) pytest -m "not slow" $(ARGS)

benchmark: setup
	$(UV) run --frozen $(GPU_EXTRA) $(EXTRAS) python benchmarks/examplegen_transform.py $(ARGS)

# Serves what the pipeline pushed (TF Serving if installed, else the embedded server).
serve: setup
	$(UV) run --frozen $(GPU_EXTRA) $(EXTRAS) python -m serving serve --model-base-path outputs/serving_model/cifar10 $(ARGS)
