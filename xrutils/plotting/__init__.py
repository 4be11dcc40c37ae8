"""One function per thesis figure (``fig_01`` ... ``fig_37``), plus the plots the model notebooks show.

Rooms: :mod:`~xrutils.plotting.common` (building blocks, run plots), :mod:`~xrutils.plotting.thesis` (Figures
1-2, 5-37), :mod:`~xrutils.plotting.architecture` (Figures 3-4), :mod:`~xrutils.plotting.failures` (Figures 8, 32
and S2, with their named verdict thresholds), :mod:`~xrutils.plotting.supplementary` (S1: the original protocol
quirk by quirk; S3: the four families at one size over their seeds). Everything is importable from here.

Figures are a pure function of run folders and evaluation results (STYLE.md §7): sample panels read the fixed-noise
grids the training loop saved (``samples/epoch_NNN.png``), curves read the evaluators' JSON (a study's
:attr:`xrutils.studies.StudyContext.results`), the two failure figures (8 and 32) and the architecture diagrams
(3 and 4) run the stored or freshly built networks forward, never backward. Nothing here trains.

Every ``fig_NN(ctx, ...)`` draws, saves PNG + PDF with provenance through :func:`xrutils.figures.save` and returns the
matplotlib Figure. "Dataset" panels show real images of the run's own data (NIH or phantom) at the run's size.
"""

from __future__ import annotations

from xrutils.plotting.architecture import (  # noqa: F401
    fig_03,
    fig_04,
    find_unet,
    trace_layers,
    unet_shapes,
)
from xrutils.plotting.common import (  # noqa: F401
    BAND_ALPHA,
    JUDGE_YLABEL,
    curve_axes,
    curve_figure,
    figure_runs,
    final_epoch,
    grid_image,
    loss_curves,
    minmax_grid,
    panel_figure,
    real_grid,
    run_info,
    sample_figure,
    sample_grids,
    size_label,
    tile,
    trained_label,
)
from xrutils.plotting.downstream import fig_S4, fig_S5  # noqa: F401
from xrutils.plotting.failures import (  # noqa: F401
    BLACK,
    FELL_APART,
    collapse_stats,
    fig_08,
    fig_32,
    fig_S2,
    fresh_samples,
)
from xrutils.plotting.supplementary import fig_S1, fig_S3, ranking_lines  # noqa: F401
from xrutils.plotting.thesis import (  # noqa: F401
    fig_01,
    fig_02,
    fig_05,
    fig_06,
    fig_07,
    fig_09,
    fig_10,
    fig_11,
    fig_12,
    fig_13,
    fig_14,
    fig_15,
    fig_16,
    fig_17,
    fig_18,
    fig_19,
    fig_20,
    fig_21,
    fig_22,
    fig_23,
    fig_24,
    fig_25,
    fig_26,
    fig_27,
    fig_28,
    fig_29,
    fig_30,
    fig_31,
    fig_33,
    fig_34,
    fig_35,
    fig_36,
    fig_37,
)
from xrutils.studies import FIGURES


def figure_numbers() -> list[int]:
    """Thesis figures that have a ``fig_NN`` function here (all 37)."""
    return [n for n in FIGURES if f"fig_{n:02d}" in globals()]


__all__ = [
    "BAND_ALPHA",
    "BLACK",
    "FELL_APART",
    "JUDGE_YLABEL",
    "collapse_stats",
    "curve_axes",
    "curve_figure",
    "fig_01",
    "fig_02",
    "fig_03",
    "fig_04",
    "fig_05",
    "fig_06",
    "fig_07",
    "fig_08",
    "fig_09",
    "fig_10",
    "fig_11",
    "fig_12",
    "fig_13",
    "fig_14",
    "fig_15",
    "fig_16",
    "fig_17",
    "fig_18",
    "fig_19",
    "fig_20",
    "fig_21",
    "fig_22",
    "fig_23",
    "fig_24",
    "fig_25",
    "fig_26",
    "fig_27",
    "fig_28",
    "fig_29",
    "fig_30",
    "fig_31",
    "fig_32",
    "fig_33",
    "fig_34",
    "fig_35",
    "fig_36",
    "fig_37",
    "fig_S1",
    "fig_S2",
    "fig_S3",
    "fig_S4",
    "fig_S5",
    "figure_numbers",
    "figure_runs",
    "final_epoch",
    "find_unet",
    "fresh_samples",
    "grid_image",
    "minmax_grid",
    "loss_curves",
    "panel_figure",
    "ranking_lines",
    "real_grid",
    "run_info",
    "sample_figure",
    "sample_grids",
    "size_label",
    "tile",
    "trace_layers",
    "trained_label",
    "unet_shapes",
]
