"""The studies: which runs each thesis study needs, who judges them, which figures it draws, and the build
support behind ``make figures``. One room of four modules, one job each:

* :mod:`~xrutils.studies.table`: the study and figure tables as data;
* :mod:`~xrutils.studies.params`: params files, the notebooks' parameter check, run configs and the judge resolver;
* :mod:`~xrutils.studies.context`: a study notebook's context and the summaries it writes;
* :mod:`~xrutils.studies.build`: run fingerprints, run-folder states, the code stamps and the command line;
* :mod:`~xrutils.studies.results`: RESULTS.md, each thesis claim against the studies' saved results;
* :mod:`~xrutils.studies.workflow`: the Snakemake workflow behind ``make figures`` (``make/Snakefile``) and its jobs.

Everything is importable from here (``studies.STUDIES``, ``studies.open_study``...).

One place answers "what does Figure N need?" for the workflow, the notebooks and the tests:

* :data:`STUDIES`: study name -> :class:`Study` (thesis section and question, runs, curve runs, figures, what the
  thesis concluded). The notebook of a study is ``notebooks/<study>.ipynb``.
* :data:`FIGURES`: thesis figure number (1-37) -> :class:`FigureSpec` (study, file name, thesis caption, runs).
* :func:`resolve_judges`: the judge of a run at image size S is the final-epoch discriminator of the GAN run at S
  (DESIGN.md); resolved from the image sizes the configs (or run folders) hold, so a profile that changes image
  sizes cannot pick the wrong judge. :func:`judge_runs_for` and :meth:`StudyContext.judges` both call it.
* :class:`StudyContext` (:func:`open_study`): what a study notebook holds: its parameters, run folders, the
  evaluation across judge sizes, and the generated summary next to the thesis's claim.

Command line (used by ``make/figures.mk`` and ``make/Snakefile``)::

    python -m xrutils.studies params [--profile P] [--force]      write params/<profile>/*.yaml
    python -m xrutils.studies figures --profile P --run-dir D --fig-dir F [--executor slurm] [-- SNAKEMAKE ARGS]
    python -m xrutils.studies plan-runs --profile P --run-dir D [--all]    what would train, resume, retrain, why
    python -m xrutils.studies exec run|study NAME ...              one job of the workflow
"""

from __future__ import annotations

from xrutils.studies.build import (  # noqa: F401
    FAMILY_MODULE,
    STAMP,
    RunStatus,
    _legacy_fingerprint,
    code_stamps,
    main,
    plan_runs,
    prepare_run,
    run_fingerprint,
    run_status,
    stale_destination,
    training_sources,
    write_code_stamps,
    write_config_stamps,
)
from xrutils.studies.context import (  # noqa: F401
    StudyContext,
    classifier_summary,
    describe_data,
    judge_summary,
    label_source,
    metrics_summary,
    open_study,
    ranking_summary,
    short_source,
)
from xrutils.studies.params import (  # noqa: F401
    JudgeNotFoundError,
    all_runs,
    check_parameters,
    common_size_runs,
    data_overrides,
    image_size_of,
    judge_runs_for,
    keep_weights,
    params_dir,
    params_notebook,
    read_params,
    resolve_judges,
    resolve_path,
    run_config,
    run_params,
    scored_anywhere,
    scored_runs,
    seeded_runs,
    study_params,
    study_run_names,
    write_params,
)
from xrutils.studies.table import (  # noqa: F401
    COMMON_SIZE,
    COMMON_SIZE_PRESETS,
    DATA_NOTEBOOKS,
    EXPECTED_FAILURES,
    EXTRA_STUDY_NOTEBOOKS,
    FIGURES,
    GAN_JUDGE_PRESETS,
    LABELS,
    MODEL_NOTEBOOKS,
    SCALED_ONLY_RUNS,
    STUDIES,
    STUDY_NOTEBOOKS,
    SUPPLEMENTARY,
    TOOL_NOTEBOOKS,
    FigureSpec,
    Study,
    figure_study,
    label,
    run_name,
    run_seed,
    seed_replicate,
    split_run_name,
    study_runs,
    supplementary_stem,
)

__all__ = [
    "COMMON_SIZE",
    "COMMON_SIZE_PRESETS",
    "DATA_NOTEBOOKS",
    "EXPECTED_FAILURES",
    "FAMILY_MODULE",
    "FIGURES",
    "FigureSpec",
    "GAN_JUDGE_PRESETS",
    "JudgeNotFoundError",
    "LABELS",
    "EXTRA_STUDY_NOTEBOOKS",
    "MODEL_NOTEBOOKS",
    "RunStatus",
    "SCALED_ONLY_RUNS",
    "STAMP",
    "STUDIES",
    "STUDY_NOTEBOOKS",
    "SUPPLEMENTARY",
    "Study",
    "StudyContext",
    "TOOL_NOTEBOOKS",
    "all_runs",
    "check_parameters",
    "classifier_summary",
    "code_stamps",
    "data_overrides",
    "describe_data",
    "figure_study",
    "image_size_of",
    "judge_runs_for",
    "judge_summary",
    "label",
    "label_source",
    "main",
    "metrics_summary",
    "open_study",
    "params_dir",
    "params_notebook",
    "plan_runs",
    "prepare_run",
    "ranking_summary",
    "read_params",
    "resolve_judges",
    "resolve_path",
    "run_config",
    "run_fingerprint",
    "run_name",
    "keep_weights",
    "run_params",
    "scored_anywhere",
    "run_status",
    "short_source",
    "split_run_name",
    "stale_destination",
    "study_params",
    "study_runs",
    "supplementary_stem",
    "training_sources",
    "write_code_stamps",
    "write_config_stamps",
    "common_size_runs",
    "run_seed",
    "scored_runs",
    "seed_replicate",
    "seeded_runs",
    "study_run_names",
    "write_params",
]
