# Two commands set everything up on a fresh machine: `make figures` and `make test`.
# Every target first makes sure .venv exists and holds this package (re-installed when pyproject.toml changes).

PROFILE  ?= demo
NIH_ROOT ?= $(XRUTILS_NIH_ROOT)
VENV     := .venv
PY       := $(abspath $(VENV))/bin/python
STAMP    := $(VENV)/.installed
FIGDIR   := figures/$(PROFILE)
RUNDIR   := runs/$(PROFILE)
# Tests look for real NIH images through the same setting users use; default to the shared sample when present.
TEST_NIH_ROOT ?= $(or $(XRUTILS_NIH_ROOT),$(wildcard $(abspath ../shared/nih_sample)))
# ... and the 1,000 real images at 64 px for the real-data training path (tests skip, with a reason, without it)
TEST_NIH_SMALL64 ?= $(or $(XRUTILS_NIH_SMALL64),$(wildcard $(abspath ../shared/nih_small64)))

export PATH := $(abspath $(VENV))/bin:$(PATH)
export MPLBACKEND := Agg

.PHONY: lock figures figures-dry downstream test test-slow smoke lint format lab clean venv gpu-wheels

venv: $(STAMP)

# Installs the exact versions of requirements.lock, then this package without resolving anything again. uv does
# the installing (30 s here, bytecode included, against pip's 147 s for the same lock), from the package sources
# pip is configured with (make/environment.py uv-args); where uv cannot be installed, pip does it.
# --compile-bytecode: pip compiles at install time and uv does not; where PYTHONDONTWRITEBYTECODE is set (as on
# this project's machines) every notebook would otherwise parse torch from source (10.1 s against 4.4 s to import).
UV_VERSION = 0.13.9
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@if $(PY) -m pip install --quiet uv==$(UV_VERSION); then \
	  set -x; UV_ARGS="$$($(PY) make/environment.py uv-args)"; \
	  $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) $$UV_ARGS -r requirements.lock && \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) $$UV_ARGS --no-deps -e .; \
	else \
	  set -x; $(PY) -m pip install --quiet -r requirements.lock && $(PY) -m pip install --quiet --no-deps -e .; \
	fi
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (xrutils)" >/dev/null
	@touch $(STAMP)

## lock: rewrite requirements.lock from a venv installed from pyproject.toml's ranges (after changing them)
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	.venv-lock/bin/python make/environment.py lock && rm -rf .venv-lock

## environment.yml: regenerate the conda environment from pyproject.toml
environment.yml: pyproject.toml make/environment.py
	python3 make/environment.py environment.yml

## figures: every thesis figure (1-37) into figures/$(PROFILE)/ (demo profile on phantom data by default), through
##          the Snakemake workflow make/Snakefile: CORES=<n> (default: all), GPUS=<n> (default: every visible GPU,
##          one job per GPU), EXECUTOR=slurm (a cluster, make/slurm/config.yaml), SNAKEMAKE_ARGS="-n" (dry run)
figures: $(STAMP)
	@$(MAKE) --no-print-directory figures-all PROFILE=$(PROFILE) NIH_ROOT=$(NIH_ROOT)

## downstream: the downstream study (issue 13; not part of `make figures`): a generator per class and family, finding
##             classifiers trained on their images and tested on real ones; Supplementary Figures S4 and S5,
##             $(FIGDIR)/results/downstream.json and the RESULTS.md row (PROFILE=, NIH_ROOT= as for figures)
downstream: $(STAMP)
	@mkdir -p $(FIGDIR)/notebooks
	$(PY) -m papermill --log-output notebooks/downstream.ipynb $(FIGDIR)/notebooks/downstream.ipynb \
	  -p profile $(PROFILE) -p run_root $(RUNDIR) -p fig_dir $(FIGDIR) -p nih_root "$(NIH_ROOT)"
	$(PY) -m xrutils.figures index --fig-dir $(FIGDIR) --profile $(PROFILE) --run-dir $(RUNDIR)

## figures-dry: what `make figures` would train, resume or retrain (and why), without running anything
figures-dry: $(STAMP)
	@$(MAKE) --no-print-directory figures-dry-all PROFILE=$(PROFILE) NIH_ROOT=$(NIH_ROOT) PY=$(PY)

TEST_ENV = XRUTILS_NIH_ROOT="$(TEST_NIH_ROOT)" XRUTILS_NIH_SMALL64="$(TEST_NIH_SMALL64)"

## test: the fast test suite (CPU, offline): everything but the end-to-end notebook builds and multi-process runs
test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## test-slow: the slow tests: every notebook end to end, the smoke build through make, two-process DDP
test-slow: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -m slow $(PYTEST_ARGS)

## smoke: the figure pipeline end to end in the smoke profile (seconds per run)
smoke: $(STAMP)
	@$(MAKE) --no-print-directory figures-all PROFILE=smoke

LINT_PATHS = xrutils tests bench make notebooks docs

## lint: ruff's checks and its formatter (--check) over the package, tests, benchmarks and build scripts
lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

## format: apply ruff's formatter
format: $(STAMP)
	$(PY) -m ruff format $(LINT_PATHS)

## lab: JupyterLab with the project's kernel on the whole repository (notebooks/, figures/, runs/), opening at
##      notebooks/; it prints the URL to open (http://localhost:8888/lab?token=...). LAB_ARGS passes flags, e.g.
##      make lab LAB_ARGS="--port 8890 --no-browser --ip 0.0.0.0"
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
	  $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

## gpu-wheels: the wheels bench/gpu_check.sh installs on a lent GPU machine (docs/PERFORMANCE.md), whose image holds
##             torch but not these: requirements.lock's versions, for its Python 3.12, into .whl/ (git-ignored)
GPU_WHEELS = diffusers importlib_metadata lazy-importer
gpu-wheels: $(STAMP)
	rm -rf .whl && mkdir .whl
	for p in $(GPU_WHEELS); do \
	  pin=$$(grep -i "^$$p==" requirements.lock) || { echo "gpu-wheels: $$p is not in requirements.lock" >&2; exit 1; }; \
	  $(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "$$pin" || exit 1; \
	done
	@ls .whl

## clean: remove runs, generated figures, caches and stamps (keeps .venv and the phantom data)
clean:
	rm -rf runs .make $(wildcard figures/*/) data/cache .pytest_cache

-include make/figures.mk
