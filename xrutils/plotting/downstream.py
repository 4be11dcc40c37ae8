"""Supplementary figures of the downstream study (issue 13, ``make downstream``): S4, the finding classifier's AUC and
balanced accuracy per family and protocol against real training data; S5, AUC against the share of real data, with
and without each family's images added."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from xrutils import figures

FAMILY_COLORS = {"gan": "tab:blue", "vae": "tab:orange", "pixelcnn": "tab:green", "ddpm": "tab:red"}
METRIC_TEXT = {"auc": "ROC AUC", "balanced_accuracy": "balanced accuracy"}


def _err(s: dict) -> tuple[float, list[list[float]]]:
    return s["value"], [[s["value"] - s["lo"]], [s["hi"] - s["value"]]]


def _provenance(ds: Any, res: dict) -> list[dict[str, Any]]:
    return [
        {"run_dir": str(ds.folder / name), "role": "class generator", "epoch": None}
        for by_class in res["generators"].values()
        for name in by_class.values()
    ]


def _title(res: dict) -> str:
    t = res["task"]
    return (
        f"{t['positive']} against {t['negative']} at {res['image_size']}² ({res['train_counts'][t['negative']]} / "
        f"{res['train_counts'][t['positive']]} real training images, {res['test_set']['n']} real test images of "
        f"{res['test_set']['patients']} patients); SimpleCNN, mean over {res['seeds']} classifier seeds, "
        "bars: 95 % patient-level cluster bootstrap"
    )


def fig_S4(ds: Any, res: dict) -> plt.Figure:
    """Per metric: TSTR and TRTS of each family (points with intervals) against TRTR (line and band)."""
    families = [f for f, _ in res["verdict"]["ranking"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.0))
    for ax, metric in zip(axes, ("auc", "balanced_accuracy"), strict=True):
        trtr = res["protocols"]["TRTR"]["scores"][metric]
        ax.axhline(trtr["value"], color="k", lw=1.2, label=f"TRTR (real): {trtr['value']:.3f}")
        ax.axhspan(trtr["lo"], trtr["hi"], color="k", alpha=0.08)
        ax.axhline(0.5, color="0.5", ls=":", lw=1, label="chance")
        x = np.arange(len(families))
        for dx, name, marker in ((-0.12, "TSTR", "o"), (0.12, "TRTS", "s")):
            for i, f in enumerate(families):
                v, e = _err(res["protocols"][f"{name}/{f}"]["scores"][metric])
                ax.errorbar(
                    x[i] + dx,
                    v,
                    yerr=e,
                    fmt=marker,
                    color=FAMILY_COLORS.get(f, "0.3"),
                    mfc="white" if name == "TRTS" else FAMILY_COLORS.get(f, "0.3"),
                    capsize=3,
                    label=name if i == 0 else None,
                )
        ax.set_xticks(x, families)
        ax.set_ylabel(METRIC_TEXT[metric])
        ax.set_ylim(0.3, 1.02)
        ax.set_title(METRIC_TEXT[metric], fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    v = res["verdict"]
    fig.suptitle(
        f"{_title(res)}\nTSTR (filled): trained on a family's images, tested on real ones; TRTS (open): trained on "
        f"real, tested on the family's; line and band: TRTR (real on real)\nthe thesis's claim (DDPM most "
        f"useful): {v['verdict']} - {v['why']}",
        fontsize=8.5,
    )
    fig.tight_layout()
    figures.save(fig, "S4", ds, runs=_provenance(ds, res), source=ds.data_source(), extra={"verdict": v})
    return fig


def fig_S5(ds: Any, res: dict) -> plt.Figure:
    """AUC against the share of the real training images: real alone, and real plus each family's images."""
    fractions = sorted(res["fractions"])
    fig, ax = plt.subplots(figsize=(9.5, 5.0))
    real = [res["protocols"][f"REAL/{f:g}"]["scores"]["auc"] for f in fractions]
    ax.errorbar(
        fractions,
        [s["value"] for s in real],
        yerr=np.array([[s["value"] - s["lo"] for s in real], [s["hi"] - s["value"] for s in real]]),
        color="k",
        marker="o",
        capsize=3,
        lw=2,
        label="real only",
    )
    families = [f for f, _ in res["verdict"]["ranking"]]
    for j, fam in enumerate(families):
        s = [res["protocols"][f"AUG/{fam}/{f:g}"]["scores"]["auc"] for f in fractions]
        xs = [f * (1 + 0.04 * (j + 1)) for f in fractions]  # side by side on the log axis
        ax.errorbar(
            xs,
            [v["value"] for v in s],
            yerr=np.array([[v["value"] - v["lo"] for v in s], [v["hi"] - v["value"] for v in s]]),
            color=FAMILY_COLORS.get(fam, "0.3"),
            marker="s",
            capsize=3,
            alpha=0.85,
            label=f"real + {fam} synthetic",
        )
    ax.axhline(0.5, color="0.5", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
    ax.set_xlabel("share of the real training images (whole patients)")
    ax.set_ylabel("ROC AUC on the real test set")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(
        "Augmentation: does adding generated images help when real ones are few? (the generators saw every real "
        "training image)",
        fontsize=9,
    )
    fig.suptitle(_title(res), fontsize=7.5)
    fig.tight_layout()
    figures.save(fig, "S5", ds, runs=_provenance(ds, res), source=ds.data_source())
    return fig
