"""The run explorer behind ``notebooks/explorer.ipynb`` (ipywidgets, for JupyterLab).

It opens on each family's baseline, with a note of the profile and data. Pick runs (filtered by family), step
through the epochs that have fixed-noise sample grids (the runs side by side, at a size you choose), and plot any
per-epoch curve of the picked runs: a ``history.csv`` column (losses, images/s, learning rate) or an evaluator's
curve from ``metrics.json`` (discriminator judge, classifier judge, feature-space FD, FD8). A table gives each
run's last evaluated epoch: judge and classifier scores, FD, KID, precision and recall.

The logic lives in plain functions (:func:`list_runs`, :func:`grid_png`, :func:`curve_options`,
:func:`curve_points`, :func:`plot_curves`, :func:`last_epoch_table`) so it is tested without a browser;
:class:`Explorer` only wires them to widgets.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from xrutils.runs import RunDir

HISTORY = "history: "  # curve names: "history: loss", "eval: judge score", ...
EVAL = "eval: "
# evaluator curves in metrics.json -> evaluation.<protocol>: (section, epochs key, values key)
EVAL_CURVES = {
    "judge score": ("judge", "epochs", "score"),
    "classifier score": ("classifier", "epochs", "score"),
    "FD (X-ray encoder)": ("fd_curve", "epochs", "fd"),
    "FD8": ("fd_curve", "epochs", "fd8"),
}


def list_runs(run_root: str | Path) -> list[Path]:
    """Run folders (with a config.json) directly under ``run_root``, sorted by name; hidden folders skipped."""
    root = Path(run_root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no such folder; train runs first (`make figures`) or pick another run_root"
        )
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "config.json").exists()
    )


def grid_epochs(run_dir: str | Path) -> list[int]:
    return RunDir(run_dir).grid_epochs()


def grid_png(run_dir: str | Path, epoch: int) -> tuple[bytes, int] | None:
    """PNG bytes of the run's sample grid at ``epoch``, or at its nearest earlier grid; None when the run has no
    grid at or before ``epoch`` (a later grid would show the model as better trained than the chosen epoch)."""
    epochs = [e for e in grid_epochs(run_dir) if e <= epoch]
    if not epochs:
        return None
    return RunDir(run_dir).sample_path(epochs[-1]).read_bytes(), epochs[-1]


def evaluation(run_dir: str | Path, protocol: str = "corrected") -> dict[str, Any]:
    """The run's stored evaluator results for ``protocol`` (``metrics.json``), {} when it was not evaluated."""
    try:
        return RunDir(run_dir).read_metrics().get("evaluation", {}).get(protocol, {}) or {}
    except (OSError, ValueError):
        return {}


def history_columns(run_dirs: list[str | Path]) -> list[str]:
    """Numeric history.csv columns present in any of the runs (``epoch`` left out)."""
    cols: list[str] = []
    for d in run_dirs:
        for row in RunDir(d).read_history()[:1]:
            cols += [k for k, v in row.items() if isinstance(v, (int, float)) and k not in cols]
    return [c for c in cols if c != "epoch"]


def curve_options(run_dirs: list[str | Path], protocol: str = "corrected") -> list[str]:
    """Every curve some picked run has: its history columns, then the evaluator curves."""
    found = [HISTORY + c for c in history_columns(run_dirs)]
    for name, (section, _, key) in EVAL_CURVES.items():
        if any((evaluation(d, protocol).get(section) or {}).get(key) for d in run_dirs):
            found.append(EVAL + name)
    return found


def curve_points(
    run_dir: str | Path, curve: str, protocol: str = "corrected"
) -> tuple[list, list, list | None]:
    """(epochs, values, (lo, hi) intervals or None) of one run's curve; empty lists when the run lacks it."""
    if curve.startswith(HISTORY):
        column = curve[len(HISTORY) :]
        rows = [r for r in RunDir(run_dir).read_history() if isinstance(r.get(column), (int, float))]
        return [r.get("epoch", i + 1) for i, r in enumerate(rows)], [r[column] for r in rows], None
    section, epochs_key, key = EVAL_CURVES[curve[len(EVAL) :]]
    part = evaluation(run_dir, protocol).get(section) or {}
    epochs, values = list(part.get(epochs_key) or []), list(part.get(key) or [])
    band = list(zip(part["lo"], part["hi"], strict=True)) if "lo" in part and key == "score" else None
    return epochs, values, band


def plot_curves(run_dirs: list[str | Path], curve: str, protocol: str = "corrected") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for d in run_dirs:
        epochs, values, band = curve_points(d, curve, protocol)
        if not epochs:
            continue
        (line,) = ax.plot(epochs, values, marker="o", ms=3, label=Path(d).name)
        if band:
            ax.fill_between(
                epochs, [b[0] for b in band], [b[1] for b in band], color=line.get_color(), alpha=0.15
            )
    ax.set_xlabel("Epoch")
    ax.set_ylabel(curve.split(": ", 1)[-1])
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no run picked has {curve!r}", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def plot_history(run_dirs: list[str | Path], column: str) -> plt.Figure:
    """A ``history.csv`` column of the runs against the epoch."""
    return plot_curves(run_dirs, HISTORY + column)


def last_epoch_table(run_dirs: list[str | Path], protocol: str = "corrected") -> Any:
    """One row per run: what it trained at, and its last evaluated epoch's scores (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for d in run_dirs:
        rd = RunDir(d)
        cfg = rd.read_config()
        ev = evaluation(d, protocol)
        row: dict[str, Any] = {
            "run": rd.name,
            "size": cfg.data.image_size,
            "lr": cfg.train.lr,
            "epochs": cfg.train.epochs,
            "trained": max(rd.checkpoint_epochs(), default=0),
        }
        for label, section in (("judge", "judge"), ("classifier", "classifier")):
            part = ev.get(section) or {}
            if part.get("score"):
                row[label] = _with_interval(part["score"][-1], part.get("lo"), part.get("hi"))
        metrics = ev.get("metrics") or {}
        for key in ("fd", "kid", "precision", "recall"):
            if isinstance(metrics.get(key), (int, float)):
                row[key.upper() if key in ("fd", "kid") else key] = round(float(metrics[key]), 3)
        fd8 = (ev.get("fd_curve") or {}).get("fd8")
        if fd8:
            row["FD8"] = round(float(fd8[-1]), 3)
        if "epoch" in metrics:
            row["eval epoch"] = metrics["epoch"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def _with_interval(value: float, lo: list | None, hi: list | None) -> str:
    if lo and hi and all(isinstance(x, (int, float)) and math.isfinite(x) for x in (lo[-1], hi[-1])):
        return f"{value:.3f} [{lo[-1]:.3f}, {hi[-1]:.3f}]"
    return f"{value:.3f}"


def baselines(names: list[str]) -> list[str]:
    """Each family's baseline among ``names`` (``<family>__baseline``), in name order."""
    return [n for n in names if n.endswith("__baseline")]


def describe(run_root: Path, runs: dict[str, Path], profile: str) -> str:
    """The note above the widgets: which profile and data the runs come from."""
    from xrutils.studies import describe_data

    if not runs:
        return f"{run_root}: no runs yet (profile {profile}); `make figures` trains them"
    cfg = RunDir(next(iter(runs.values()))).read_config()
    return f"{len(runs)} runs of profile {cfg.profile} in {run_root}, trained on {describe_data(cfg)}"


class Explorer:
    """Widgets: family filter, run picker, epoch slider over the grids' epochs, a grid-size slider, the grids side
    by side, a curve picker (history and evaluator curves) with its plot, and the last-epoch table."""

    def __init__(self, run_root: str | Path, profile: str = "demo", protocol: str = "corrected"):
        import ipywidgets as w

        self.run_root, self.protocol = Path(run_root), protocol
        self.runs = {p.name: p for p in list_runs(self.run_root)}
        self.families = {n: RunDir(p).read_config().family for n, p in self.runs.items()}
        self.note = w.HTML(describe(self.run_root, self.runs, profile))
        self.family = w.Dropdown(
            options=["all", *sorted(set(self.families.values()))], value="all", description="family"
        )
        start = baselines(list(self.runs)) or list(self.runs)[:2]
        self.picker = w.SelectMultiple(
            options=list(self.runs),
            value=tuple(start),
            rows=min(12, max(3, len(self.runs))),
            description="runs",
        )
        self.epoch = w.SelectionSlider(options=[1], value=1, description="epoch", continuous_update=False)
        self.size = w.IntSlider(
            value=260, min=120, max=640, step=20, description="grid px", continuous_update=False
        )
        self.curve = w.Dropdown(options=[], description="curve", layout=w.Layout(width="360px"))
        self.grids = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.plot = w.Output()
        self.table = w.Output()
        self.family.observe(self._on_family, names="value")
        self.picker.observe(self._on_runs, names="value")
        self.epoch.observe(lambda _: self.show_grids(), names="value")
        self.size.observe(lambda _: self.show_grids(), names="value")
        self.curve.observe(lambda _: self.show_curve(), names="value")
        self.widget = w.VBox(
            [
                self.note,
                w.HBox([self.family, self.picker]),
                w.HBox([self.epoch, self.size]),
                self.grids,
                self.curve,
                self.plot,
                self.table,
            ]
        )
        self._on_runs()

    def picked(self) -> list[Path]:
        return [self.runs[n] for n in self.picker.value]

    def _on_family(self, _: Any = None) -> None:
        fam = self.family.value
        names = [n for n in self.runs if fam == "all" or self.families[n] == fam]
        self.picker.options = names
        self.picker.value = tuple(baselines(names) or names[:2]) if fam == "all" else tuple(names[:2])

    def _on_runs(self, _: Any = None) -> None:
        epochs = sorted({e for p in self.picked() for e in grid_epochs(p)}) or [1]
        self.epoch.options = epochs
        self.epoch.value = epochs[-1]
        previous = self.curve.value  # reassigning the options resets the value to the first one
        options = curve_options(self.picked(), self.protocol)
        self.curve.options = options
        if previous in options:
            self.curve.value = previous
        elif options:
            self.curve.value = next((c for c in options if c == HISTORY + "loss"), options[0])
        self.show_grids()
        self.show_curve()
        self.show_table()

    def show_grids(self) -> None:
        import ipywidgets as w

        boxes = []
        for p in self.picked():
            found = grid_png(p, self.epoch.value)
            if found is None:
                first = grid_epochs(p)
                why = f"first grid at epoch {first[0]}" if first else "no sample grids"
                boxes.append(w.Label(f"{p.name}: no grid at or before epoch {self.epoch.value} ({why})"))
                continue
            png, shown = found
            note = (
                ""
                if shown == self.epoch.value
                else f" (nearest earlier grid; epoch {self.epoch.value} has none)"
            )
            boxes.append(
                w.VBox(
                    [
                        w.Label(f"{p.name}, epoch {shown}{note}"),
                        w.Image(value=png, format="png", width=self.size.value),
                    ]
                )
            )
        self.grids.children = boxes or [w.Label("pick one or more runs")]

    def show_curve(self) -> None:
        self.plot.outputs = ()  # cleared at once (clear_output(wait=True) keeps the old plot when nothing follows)
        if not self.picked() or not self.curve.value:
            self.plot.append_stdout(
                "pick one or more runs\n" if not self.picked() else "the picked runs have no curves yet\n"
            )
            return
        with self.plot:
            fig = plot_curves(self.picked(), self.curve.value, self.protocol)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            from IPython.display import Image, display

            display(Image(buf.getvalue()))

    def show_table(self) -> None:
        self.table.outputs = ()
        if not self.picked():
            return
        with self.table:
            from IPython.display import display

            display(last_epoch_table(self.picked(), self.protocol))


def launch(run_root: str | Path = "", profile: str = "demo") -> Any:
    """The explorer widget for the runs under ``run_root`` (default ``runs/<profile>``); display it as a cell's
    last expression."""
    from xrutils.studies import resolve_path

    return Explorer(resolve_path(run_root or Path("runs") / profile), profile=profile).widget
