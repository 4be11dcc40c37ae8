# The figure pipeline: `make figures` (top-level Makefile) calls `figures-all`.
#
# Model notebooks train runs into $(RUNDIR)/<family>__<preset>/ (papermill, one per params/$(PROFILE)/<run>.yaml);
# study notebooks draw figures into $(FIGDIR)/ after the runs (and GAN judge runs) they need; FIGURES.md comes last.
# The rules are generated from the study table (xrutils/studies/) into $(FIGURES_STAMPDIR)/rules.mk, rewritten
# only when they change, and run by a sub-make, so `make -j` parallelises runs and studies.
#
# Incremental by file stamps written only on success: $(RUNDIR)/<run>/.complete and $(FIGDIR)/.stamps/<study>.done.
# Code counts by meaning (xrutils/fingerprint.py): stamp files under $(FIGURES_STAMPDIR)/code/ hold the fingerprint of
# each family's training code (docstrings and comments stripped), of the figure code and of each notebook's code cells,
# rewritten only when it changes; the rules depend on those, not on the sources' modification times.
# A run reruns when its params file, its notebook's code or its family's training code changes; a stale run folder is
# kept, never deleted, in $(RUNDIR)/.stale/<run>@<fingerprint>/. A run killed half-way keeps its fingerprint and
# resumes from its last checkpoint. `make figures` first prints what it will train, resume or retrain and why;
# `make figures-dry` prints only that. A study reruns when its params, its notebook's code, the plotting/evaluation
# code or one of its runs changes.
# NIH_ROOT (or $XRUTILS_NIH_ROOT) switches runs and Figure 1 to NIH data; changing it retrains.

PROFILE ?= demo
PY      ?= .venv/bin/python
FIGDIR  ?= figures/$(PROFILE)
RUNDIR  ?= runs/$(PROFILE)
FIGURES_NIH_ROOT  = $(or $(NIH_ROOT),$(XRUTILS_NIH_ROOT))
FIGURES_STAMPDIR ?= .make/$(PROFILE)
FIGURES_RULES     = $(FIGURES_STAMPDIR)/rules.mk

.PHONY: figures-all figures-dry-all figures-rules figures-params figures-timing

# Without -j on the command line the runs and studies still go in parallel, one job per core (each job then uses
# one torch thread; see the generated rules). `make -jN figures` sets the number of jobs instead.
FIGURES_NPROC := $(shell nproc 2>/dev/null || echo 1)
FIGURES_JFLAG  = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(FIGURES_NPROC))

figures-all: figures-rules
	@$(PY) -m xrutils.studies plan-runs --profile $(PROFILE) --run-dir $(RUNDIR) --nih-root "$(FIGURES_NIH_ROOT)"
	@$(MAKE) --no-print-directory $(FIGURES_JFLAG) -f $(FIGURES_RULES) all PY="$(PY)" RUNDIR="$(RUNDIR)" \
		FIGDIR="$(FIGDIR)" NIH_ROOT="$(FIGURES_NIH_ROOT)"

figures-rules:
	@$(PY) -m xrutils.studies makefile --profile $(PROFILE) --out $(FIGURES_RULES) \
		--stamp-dir $(FIGURES_STAMPDIR) --nih-root "$(FIGURES_NIH_ROOT)"

# What `make figures` would train, resume or retrain, and why; runs nothing.
figures-dry-all: figures-rules
	@$(PY) -m xrutils.studies plan-runs --profile $(PROFILE) --run-dir $(RUNDIR) --nih-root "$(FIGURES_NIH_ROOT)" --all

# Writes params/<profile>/*.yaml that are missing (existing, possibly edited, files are kept).
figures-params:
	$(PY) -m xrutils.studies params

# Wall time of every executed notebook of the last build (slowest first).
figures-timing:
	@$(PY) -m xrutils.figures timing --fig-dir $(FIGDIR) --run-dir $(RUNDIR)
