# The figure pipeline: `make figures` (top-level Makefile) calls `figures-all`, which runs the Snakemake workflow
# make/Snakefile through `python -m xrutils.studies figures` (xrutils/studies/workflow.py).
#
# Model notebooks train runs into $(RUNDIR)/<family>__<preset>/ (papermill, one per params/$(PROFILE)/<run>.yaml);
# study notebooks draw figures into $(FIGDIR)/ after the runs (and GAN judge runs) they need; FIGURES.md comes last.
# Jobs run in parallel: every core ($(CORES)), and at most one job per GPU (GPUS: every visible GPU by default), each
# GPU job seeing only its own device. EXECUTOR=slurm spreads them over a cluster (make/slurm/config.yaml).
#
# Incremental by file stamps written only on success: $(RUNDIR)/<run>/.complete and $(FIGDIR)/.stamps/<study>.done.
# Code counts by meaning (xrutils/fingerprint.py): stamp files under $(FIGURES_STAMPDIR)/code/ hold the fingerprint of
# each family's training code (docstrings and comments stripped), of the figure code and of each notebook's code cells,
# rewritten only when it changes; the rules depend on those, not on the sources' modification times.
# A run reruns when its resolved config (params file, preset, profile, NIH root: a stamp under
# $(FIGURES_STAMPDIR)/config/), its notebook's code or its family's training code changes; a stale run folder is
# kept, never deleted, in $(RUNDIR)/.stale/<run>@<fingerprint>/. A run killed half-way keeps its fingerprint and
# resumes from its last checkpoint; a killed build picks up where it stopped. `make figures` first prints what it
# will train, resume or retrain and why; `make figures-dry` prints only that. A study reruns when its params, its
# notebook's code, the plotting/evaluation code or one of its runs changes.
# NIH_ROOT (or $(XRUTILS_NIH_ROOT)) switches runs and Figure 1 to NIH data; changing it retrains.

PROFILE ?= demo
PY      ?= .venv/bin/python
FIGDIR  ?= figures/$(PROFILE)
RUNDIR  ?= runs/$(PROFILE)
FIGURES_NIH_ROOT  = $(or $(NIH_ROOT),$(XRUTILS_NIH_ROOT))
FIGURES_STAMPDIR ?= .make/$(PROFILE)
CORES    ?= $(shell nproc 2>/dev/null || echo 1)
GPUS     ?= auto
EXECUTOR ?= local
# extra Snakemake options, e.g. SNAKEMAKE_ARGS="-n" (dry run) or "--forcerun study"
SNAKEMAKE_ARGS ?=

.PHONY: figures-all figures-dry-all figures-stamps figures-params figures-timing

figures-all:
	@$(PY) -m xrutils.studies figures --profile $(PROFILE) --run-dir $(RUNDIR) --fig-dir $(FIGDIR) \
		--stamp-dir $(FIGURES_STAMPDIR) --nih-root "$(FIGURES_NIH_ROOT)" --cores $(CORES) --gpus $(GPUS) \
		--executor $(EXECUTOR) $(if $(strip $(SNAKEMAKE_ARGS)),-- $(SNAKEMAKE_ARGS))

# The fingerprint stamps the rules depend on (figures-all writes them too).
figures-stamps:
	@$(PY) -m xrutils.studies stamps --profile $(PROFILE) --run-dir $(RUNDIR) --stamp-dir $(FIGURES_STAMPDIR) \
		--nih-root "$(FIGURES_NIH_ROOT)"

# What `make figures` would train, resume or retrain, and why; runs nothing.
figures-dry-all: figures-stamps
	@$(PY) -m xrutils.studies plan-runs --profile $(PROFILE) --run-dir $(RUNDIR) --nih-root "$(FIGURES_NIH_ROOT)" --all

# Writes params/<profile>/*.yaml that are missing (existing, possibly edited, files are kept).
figures-params:
	$(PY) -m xrutils.studies params

# Wall time of every executed notebook of the last build (slowest first).
figures-timing:
	@$(PY) -m xrutils.figures timing --fig-dir $(FIGDIR) --run-dir $(RUNDIR)
