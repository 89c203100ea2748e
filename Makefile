# Two commands do all the set-up on a fresh machine:
#   make simulate   real default simulation (Fashion-MNIST, 20 agents, MCE-PL), ~5 min on 2 cores
#   make test       the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: setup data browser simulate test test-portable lint install-check gpu-check bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Fashion-MNIST from Debian where apt exists (no-op when already there or when apt is absent).
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

simulate: setup data
	$(VENV)/bin/raympl simulate --model small-cnn --agents 20 --topology er --p 0.5 \
		--classes-per-agent 4 --retention 0.3 --rounds 200 --eval-every 10 --eval-samples 500 \
		--out runs/default-$$(date +%Y%m%d-%H%M%S)

# Debian's Chromium, for the test that renders `raympl report` headless (no-op when already there or when
# apt is absent; the test then fails saying what to install, it is never skipped).
browser:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

# The tests of exact results again under torch's portable kernels (the suite runs on the machine's own, e.g.
# AVX-512): an expectation that holds on one instruction set only fails here (docs/design-choices.md).
PORTABLE_TESTS = tests/test_defaults_unchanged.py tests/test_mce_round.py tests/test_mask_ops.py \
	tests/test_wire.py tests/test_baselines.py tests/test_plugin_models.py
test-portable: setup
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -p no:cacheprovider $(PORTABLE_TESTS)

test: setup browser
	$(VENV)/bin/ruff check .
	$(MAKE) test-portable
	$(PY) -m pytest -q --durations=15

# The wheel in a fresh virtual environment, run from outside the checkout (.ci/run runs this too).
install-check: setup
	bash .ci/install-check

# On a machine with a CUDA GPU: the tests marked cuda and a short benchmark -> $(GPU_OUT)/gpu-check.md.
# Where the project is not installed (the device image), run `make gpu-check PY=python3`.
GPU_OUT ?= runs/gpu-check
gpu-check:
	$(PY) studies/gpu_check.py --out $(GPU_OUT)

# Seconds per round next to the conv floor and FLOP limit (bench.md); BENCH_ARGS=--quick for a 2-minute run.
bench: setup
	$(VENV)/bin/raympl bench $(BENCH_ARGS) --out runs/bench

lint: setup
	$(VENV)/bin/ruff check .
