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

.PHONY: figures figures-dry test smoke lint lab clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (xrutils)" >/dev/null
	@touch $(STAMP)

## figures: every thesis figure (1-37) into figures/$(PROFILE)/ (demo profile on phantom data by default)
figures: $(STAMP)
	@$(MAKE) --no-print-directory figures-all PROFILE=$(PROFILE) NIH_ROOT=$(NIH_ROOT)

## figures-dry: what `make figures` would train, resume or retrain (and why), without running anything
figures-dry: $(STAMP)
	@$(MAKE) --no-print-directory -f make/figures.mk figures-dry PROFILE=$(PROFILE) NIH_ROOT=$(NIH_ROOT) PY=$(PY)

## test: the whole test suite (CPU, offline)
test: $(STAMP)
	XRUTILS_NIH_ROOT="$(TEST_NIH_ROOT)" XRUTILS_NIH_SMALL64="$(TEST_NIH_SMALL64)" $(PY) -m pytest -q $(PYTEST_ARGS)

## smoke: the figure pipeline end to end in the smoke profile (seconds per run)
smoke: $(STAMP)
	@$(MAKE) --no-print-directory figures-all PROFILE=smoke

## lint: ruff over the package, tests, benchmarks
lint: $(STAMP)
	$(PY) -m ruff check xrutils tests bench

## lab: JupyterLab with the project's kernel
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

## clean: remove runs, generated figures, caches and stamps (keeps .venv and the phantom data)
clean:
	rm -rf runs .make $(wildcard figures/*/) data/cache .pytest_cache

-include make/figures.mk
