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
# torch pulls a multi-GB CUDA build
TORCH := torch==2.13.0
PYTEST := $(BIN)/python -m pytest
# Numba's cache is keyed on each function's own file (not the files it calls)
# and not on NUMBA_BOUNDSCHECK or the CUDA simulator: the test runs keep their
# caches under a hash of the package's sources, one directory per kind of run.
SOURCES_HASH := $(shell cat $$(find fastgd -name '*.py' | sort) | sha1sum | cut -c1-12)
CACHE := $(CURDIR)/.numba_cache/$(SOURCES_HASH)

BENCH_ARGS ?=

.PHONY: demo test bench clean-cache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-test: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,oracles,bench,compare,jax,report,distributed,cuda,data,mkl]"
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[report,compare,jax,mkl]"
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/fastgd compare --preset lecture --out reports/latest

NO_KERNELS_OF_THEIR_OWN := test_report.py test_readme.py test_hostile_input.py test_hostile_data.py \
	test_hostile_sweep.py test_hostile_probe2.py test_merge.py test_datafiles.py test_report_data.py \
	test_report_guards.py test_verdicts.py test_stats.py test_figures_readable.py test_throughput_noise.py \
	test_progress.py test_docs.py test_architecture.py test_sweep.py test_cuda_ptx.py test_problems.py test_optimum.py \
	test_report_per_problem.py test_parameter_paths.py test_stored_baselines.py test_benchmarks.py
# The parity tests against pytorch-optimizer's rules on network layouts: the same kernels run bounds-checked in the
# registry-wide tests (test_optim, test_rules, test_training: every rule, tensors of every shape class there)
PARITY_ONLY := test_more_rules.py test_kron.py

test: $(VENV)/.installed-test
	$(BIN)/ruff check fastgd tests benchmarks
	NUMBA_CACHE_DIR=$(CACHE)/default $(PYTEST) -n 2 -q --durations=25 --ignore=tests/cuda
	# every kernel once more with bounds checks. Left out: the tests that run no kernel the others do not (the
	# report's, the README's, the command line's refusals, stores, statistics, the docs, layering, the asv
	# suite's smoke tests, which call the library's kernels from a Numba cache of their own) and the PTX
	# compilation (CUDA code, which the simulator's run checks with its own bounds); and PARITY_ONLY
	NUMBA_CACHE_DIR=$(CACHE)/boundscheck NUMBA_BOUNDSCHECK=1 $(PYTEST) -n 2 -q -p no:cacheprovider \
		--ignore=tests/cuda $(addprefix --ignore=tests/,$(NO_KERNELS_OF_THEIR_OWN) $(PARITY_ONLY))
	NUMBA_CACHE_DIR=$(CACHE)/cudasim NUMBA_ENABLE_CUDASIM=1 $(PYTEST) tests/cuda -n 2 -q -p no:cacheprovider

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/scripts/asv_summary.py --run $(BENCH_ARGS)

clean-cache:
	rm -rf $(CURDIR)/.numba_cache
	find fastgd -name '*.nbi' -delete -o -name '*.nbc' -delete
