"""The run explorer behind ``notebooks/explorer.ipynb`` (ipywidgets, for JupyterLab).

Pick runs (filtered by family), scrub through the epochs of their fixed-noise sample grids side by side, and plot
any ``history.csv`` column of the picked runs. The logic lives in plain functions (:func:`list_runs`,
:func:`grid_png`, :func:`history_columns`, :func:`plot_history`) so it is tested without a browser; :class:`Explorer`
only wires them to widgets.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from xrutils.runs import RunDir


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
    return sorted(int(p.stem.split("_")[1]) for p in RunDir(run_dir).samples_dir.glob("epoch_*.png"))


def grid_png(run_dir: str | Path, epoch: int) -> tuple[bytes, int] | None:
    """PNG bytes of the run's sample grid at ``epoch``, or at its last epoch before it; None without grids."""
    epochs = [e for e in grid_epochs(run_dir) if e <= epoch] or grid_epochs(run_dir)[:1]
    if not epochs:
        return None
    shown = epochs[-1]
    return RunDir(run_dir).sample_path(shown).read_bytes(), shown


def history_columns(run_dirs: list[str | Path]) -> list[str]:
    """Numeric history.csv columns present in any of the runs (``epoch`` first if present)."""
    cols: list[str] = []
    for d in run_dirs:
        for row in RunDir(d).read_history()[:1]:
            cols += [k for k, v in row.items() if isinstance(v, (int, float)) and k not in cols]
    return [c for c in cols if c != "epoch"]


def plot_history(run_dirs: list[str | Path], column: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for d in run_dirs:
        rows = [r for r in RunDir(d).read_history() if isinstance(r.get(column), (int, float))]
        if rows:
            ax.plot(
                [r.get("epoch", i + 1) for i, r in enumerate(rows)],
                [r[column] for r in rows],
                marker="o",
                ms=3,
                label=Path(d).name,
            )
    ax.set_xlabel("Epoch")
    ax.set_ylabel(column)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no run picked has a {column!r} column", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


class Explorer:
    """Widgets: family filter, run picker, epoch slider, sample grids side by side, a history plot."""

    def __init__(self, run_root: str | Path, initial: int = 2):
        import ipywidgets as w

        self.run_root = Path(run_root)
        self.runs = {p.name: p for p in list_runs(self.run_root)}
        families = sorted({RunDir(p).read_config().family for p in self.runs.values()})
        self.family = w.Dropdown(options=["all", *families], value="all", description="family")
        self.picker = w.SelectMultiple(
            options=list(self.runs),
            value=tuple(list(self.runs)[:initial]),
            rows=min(10, max(3, len(self.runs))),
            description="runs",
        )
        self.epoch = w.IntSlider(min=1, max=1, value=1, description="epoch", continuous_update=False)
        self.column = w.Dropdown(options=[], description="history")
        self.grids = w.HBox()
        self.plot = w.Output()
        self.family.observe(self._on_family, names="value")
        self.picker.observe(self._on_runs, names="value")
        self.epoch.observe(lambda _: self.show_grids(), names="value")
        self.column.observe(lambda _: self.show_history(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.family, self.picker]), self.epoch, self.grids, self.column, self.plot]
        )
        self._on_runs()

    def picked(self) -> list[Path]:
        return [self.runs[n] for n in self.picker.value]

    def _on_family(self, _: Any = None) -> None:
        names = [
            n
            for n, p in self.runs.items()
            if self.family.value == "all" or RunDir(p).read_config().family == self.family.value
        ]
        self.picker.options = names
        self.picker.value = tuple(names[:2])

    def _on_runs(self, _: Any = None) -> None:
        last = max((max(grid_epochs(p), default=1) for p in self.picked()), default=1)
        self.epoch.max = max(1, last)
        self.epoch.value = self.epoch.max
        cols = history_columns(self.picked())
        self.column.options = cols
        if cols and self.column.value not in cols:
            self.column.value = next((c for c in cols if "loss" in c), cols[0])
        self.show_grids()
        self.show_history()

    def show_grids(self) -> None:
        import ipywidgets as w

        boxes = []
        for p in self.picked():
            found = grid_png(p, self.epoch.value)
            if found is None:
                boxes.append(w.Label(f"{p.name}: no sample grids"))
                continue
            png, shown = found
            note = "" if shown == self.epoch.value else f" (last: {shown})"
            boxes.append(
                w.VBox(
                    [w.Label(f"{p.name}, epoch {shown}{note}"), w.Image(value=png, format="png", width=260)]
                )
            )
        self.grids.children = boxes

    def show_history(self) -> None:
        self.plot.clear_output(wait=True)
        if not self.column.value:
            return
        with self.plot:
            fig = plot_history(self.picked(), self.column.value)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            plt.close(fig)
            from IPython.display import Image, display

            display(Image(buf.getvalue()))


def launch(run_root: str | Path = "runs/demo") -> Any:
    """The explorer widget for the runs under ``run_root`` (display it as a cell's last expression)."""
    from xrutils.studies import resolve_path

    return Explorer(resolve_path(run_root)).widget
