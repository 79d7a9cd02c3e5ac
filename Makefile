# The two commands of the README's quick start, and what they need.
#   make demo   set up .venv and run the main job on the bundled data
#   make test   set up .venv, lint (ruff, the rule set in pyproject.toml), and run the whole test suite
#               (what CI runs): the suite, the
#               suite again with NUMBA_BOUNDSCHECK=1, and the CUDA tests (tests/cuda) under
#               Numba's CUDA simulator, which must be switched on before Numba is imported
#   make bench  run the asv suite here (--python=same) and write reports/asv_summary.md
#               (BENCH_ARGS=--quick: every benchmark once)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pinned: on this project's machines this is a local CPU build; an unpinned
# torch pulls a multi-GB CUDA build. It is installed in the same pip command as fastgd: one resolution, not two
TORCH := torch==2.13.0
PYTEST := $(BIN)/python -m pytest
# --no-compile: pip byte-compiles every module it installs (torch's, JAX's, SciPy's: thousands), which took
# 60 of the demo's 99 s of installing here; Python compiles the few a run imports as it first imports them
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile
# Numba's cache is keyed on each function's own file (not the files it calls)
# and not on NUMBA_BOUNDSCHECK or the CUDA simulator: the test runs keep their
# caches under a hash of the package's sources, one directory per kind of run.
SOURCES_HASH := $(shell cat $$(find fastgd -name '*.py' | sort) | sha1sum | cut -c1-12)
CACHE := $(CURDIR)/.numba_cache/$(SOURCES_HASH)

BENCH_ARGS ?=

.PHONY: demo test bench clean-cache

# editable installs from pyproject.toml need pip 21.3 or later; a newer one is not fetched (3 s of the demo's install)
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip>=21.3"

$(VENV)/.installed-test: pyproject.toml Makefile | $(BIN)/python
	$(PIP_INSTALL) $(TORCH) -e ".[test,oracles,bench,compare,jax,report,distributed,cuda,data,mkl]"
	touch $@

# the demo's networks are small (one hidden layer of 32 on the bundled sets): no batch reaches the threaded
# pass that MKL serves, so the demo leaves the mkl extra out; PyTorch and JAX are the report's peers
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) $(TORCH) -e ".[report,compare,jax]"
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/fastgd compare --preset lecture --out reports/latest

# The bounds-checked run: the files that test the kernels themselves, each kernel with the shapes that reach its
# edges (every rule's step, serial and prange; the MLP's and the declared networks' passes and epochs, threaded
# ones included; the sweep's batched epoch; L-BFGS; the reductions and closures; the data sets' scatter; the
# floors; the test functions and landscapes). The other files call these same kernels through Python layers
# (estimators, sweeps, tuning, calibration, the report, the command line) or test no kernel at all; the
# pytorch-optimizer parity files run kernels the registry-wide files already cover. A new file that tests a kernel
# of its own joins this list.
BOUNDSCHECKED := test_optim.py test_rules.py test_reductions.py test_closures.py test_training.py test_models.py \
	test_network_passes.py test_network_training.py test_threaded.py test_lbfgs.py test_floors.py test_quadratic.py \
	test_datasets.py test_sweep_networks.py test_sweep_schedules.py test_objective.py test_tools.py
# Under bounds checks, float64 only: a kernel indexes its arrays the same way in either dtype (one source, two
# specialisations), so the float32 specialisations would add their compile time (every rule's step again, serial
# and prange) and no index the float64 ones do not reach. That leaves out the LLVM IR test (float32 steps do no
# float64 arithmetic) too, which compiles every element-wise rule's step afresh, uncached, by design.
NOT_BOUNDSCHECKED_TESTS := not float32
# and the tests marked above_kernels (pyproject.toml says why)
NOT_BOUNDSCHECKED_MARKS := not above_kernels

test: $(VENV)/.installed-test
	$(BIN)/ruff check fastgd tests benchmarks
	NUMBA_CACHE_DIR=$(CACHE)/default $(PYTEST) -n 2 -q --durations=25 --ignore=tests/cuda
	# every kernel once more with bounds checks (BOUNDSCHECKED)
	NUMBA_CACHE_DIR=$(CACHE)/boundscheck NUMBA_BOUNDSCHECK=1 $(PYTEST) -n 2 -q -p no:cacheprovider \
		--durations=10 -k "$(NOT_BOUNDSCHECKED_TESTS)" -m "$(NOT_BOUNDSCHECKED_MARKS)" $(addprefix tests/,$(BOUNDSCHECKED))
	NUMBA_CACHE_DIR=$(CACHE)/cudasim NUMBA_ENABLE_CUDASIM=1 $(PYTEST) tests/cuda -n 2 -q -p no:cacheprovider

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/scripts/asv_summary.py --run $(BENCH_ARGS)

clean-cache:
	rm -rf $(CURDIR)/.numba_cache
	find fastgd -name '*.nbi' -delete -o -name '*.nbc' -delete
