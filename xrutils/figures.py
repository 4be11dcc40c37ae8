"""Saving a thesis figure with its provenance, and the figure index ``figures/<profile>/FIGURES.md``.

Every figure is saved as ``fig_NN_<slug>.png`` and ``.pdf`` in ``figures/<profile>/``. Its provenance (thesis number,
caption, notebook, the notebook's parameters, run folders and epochs, git commit, data source, profile) goes to three
places that say the same thing: the PNG's text chunks (key ``Provenance`` holds the JSON; ``Title`` and
``Description`` the number and caption), the PDF's metadata (``Keywords`` holds the JSON), and an index entry
``index/fig_NN.json``. :func:`build_index` turns the entries into ``FIGURES.md``; a study notebook writes only its
own entries, so studies can run in parallel.

Figures that do not come from the full thesis setting on NIH data carry a footer on their face saying which profile
and data they come from ("demo profile, phantom data").

Command line: ``python -m xrutils.figures index --fig-dir figures/demo --profile demo [--require-all]``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from xrutils.atomic import atomic_path, atomic_write_text
from xrutils.paths import repo_root
from xrutils.studies import FIGURES, STUDIES, SUPPLEMENTARY, FigureSpec

PROVENANCE_KEY = "Provenance"


def spec(key: int | str) -> FigureSpec:
    if isinstance(key, int):
        if key not in FIGURES:
            raise KeyError(f"thesis figure {key} does not exist; the thesis has Figures 1-37")
        return FIGURES[key]
    if key not in SUPPLEMENTARY:
        raise KeyError(f"supplementary figure {key!r} is not declared; known: {sorted(SUPPLEMENTARY)}")
    return SUPPLEMENTARY[key]


def stem(key: int | str) -> str:
    return f"fig_{key:02d}_{spec(key).slug}" if isinstance(key, int) else f"fig_{key}_{spec(key).slug}"


def git_commit() -> str:
    """The checkout's commit (short hash, "+dirty" when the tree has changes), or a reason it is unknown."""
    root = repo_root()
    if root is None:
        return "unknown (not a source checkout)"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "uncommitted (the repository has no commit yet)"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e.__class__.__name__})"


def footer_text(profile: str, source: str) -> str | None:
    """The line a figure carries on its face unless it is the thesis setting on NIH data."""
    if profile == "thesis" and source.startswith("NIH"):
        return None
    return f"{profile} profile, {source} data (not the thesis's results)"


def save(
    fig: Any,
    key: int | str,
    ctx: Any,
    *,
    runs: list[dict[str, Any]] | None = None,
    source: str | None = None,
    short_source: str | None = None,
    notes: str = "",
    extra: dict[str, Any] | None = None,
    footer: str | None = None,
    dpi: int = 150,
) -> dict[str, Any]:
    """Save ``fig`` as PNG and PDF with provenance, write its index entry, return the entry.

    ``ctx`` is a :class:`xrutils.studies.StudyContext` (profile, fig_dir, notebook, parameters). ``runs``: one dict
    per run folder used (``{"run_dir", "epoch", ...}``). ``source``: the data, in words; ``short_source`` the word
    for the footer ("phantom", "NIH ChestX-ray14"); ``footer`` replaces the footer line (figures without data).
    """
    s = spec(key)
    fig_dir = Path(ctx.fig_dir)
    source = source or ctx.data_source()
    short = short_source or (
        "phantom" if "phantom" in source else "NIH ChestX-ray14" if "NIH" in source else source
    )
    footer = footer or footer_text(ctx.profile, short)
    if footer:
        fig.text(0.995, 0.004, footer, ha="right", va="bottom", fontsize=7, color="0.35", style="italic")
    entry = {
        "number": key,
        "title": f"Thesis Figure {key}" if isinstance(key, int) else f"Supplementary Figure {key}",
        "caption": s.caption,
        "note": s.note,
        "notes": notes,
        "study": s.study,
        "notebook": ctx.notebook,
        "executed_notebook": str(fig_dir / "notebooks" / Path(ctx.notebook).name),
        "parameters": ctx.parameters,
        "runs": runs or [],
        "commit": git_commit(),
        "data_source": source,
        "profile": ctx.profile,
        "footer": footer,
        "files": {"png": f"{stem(key)}.png", "pdf": f"{stem(key)}.pdf"},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    blob = json.dumps(entry, sort_keys=True, default=str)
    png_meta = {
        "Title": entry["title"],
        "Description": s.caption,
        "Source": ctx.notebook,
        "Software": "xrutils",
        PROVENANCE_KEY: blob,
    }
    pdf_meta = {
        "Title": entry["title"],
        "Subject": s.caption,
        "Creator": f"xrutils ({ctx.notebook})",
        "Keywords": blob,
    }
    fig_dir.mkdir(parents=True, exist_ok=True)
    for ext, meta in (("png", png_meta), ("pdf", pdf_meta)):
        with atomic_path(fig_dir / entry["files"][ext]) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, metadata=meta, bbox_inches="tight")
    atomic_write_text(
        fig_dir / "index" / f"{stem(key)}.json", json.dumps(entry, indent=2, default=str) + "\n"
    )
    return entry


def read_provenance(png_path: str | Path) -> dict[str, Any]:
    """The provenance JSON stored in a figure PNG's text chunks."""
    with Image.open(png_path) as im:
        text = dict(getattr(im, "text", {}) or im.info)
    if PROVENANCE_KEY not in text:
        raise KeyError(f"{png_path}: no {PROVENANCE_KEY!r} text chunk; was it saved by xrutils.figures.save?")
    return json.loads(text[PROVENANCE_KEY])


def read_entries(fig_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Index entries by key ("1".."37", "S1", ...)."""
    out = {}
    for path in sorted((Path(fig_dir) / "index").glob("fig_*.json")):
        try:
            entry = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: broken index entry ({e}); rerun its study notebook") from e
        out[str(entry["number"])] = entry
    return out


def _fmt_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "none (no trained model)"
    parts = []
    for r in runs:
        bits = [f"`{r.get('run_dir')}`"]
        if r.get("epoch") is not None:
            bits.append(f"epoch {r['epoch']}")
        if r.get("role"):
            bits.append(str(r["role"]))
        parts.append(" ".join(bits[:1]) + (f" ({', '.join(bits[1:])})" if len(bits) > 1 else ""))
    return "; ".join(parts)


def build_index(
    fig_dir: str | Path, profile: str, *, require_all: bool = False, run_dir: str | Path | None = None
) -> Path:
    """Write ``FIGURES.md`` listing Figures 1-37 (missing ones marked) and the supplementary figures; with
    ``run_dir`` (the build's run folders) also the learning summary (:mod:`xrutils.learning`) at its top. Also
    writes ``RESULTS.md`` (:mod:`xrutils.studies.results`)."""
    fig_dir = Path(fig_dir)
    entries = read_entries(fig_dir)
    missing = [
        n
        for n in FIGURES
        if str(n) not in entries or not (fig_dir / entries[str(n)]["files"]["png"]).exists()
    ]
    lines = [
        f"# Figures of the thesis, regenerated ({profile} profile)",
        "",
        f"Generated by `python -m xrutils.figures index` from the entries the study notebooks wrote "
        f"(`{fig_dir}/index/`). Each PNG carries the same provenance in its `{PROVENANCE_KEY}` text chunk, each "
        "PDF in its Keywords. Figures 1-37 follow the thesis's numbering; captions are the thesis's own, with a "
        "reproduction note where this build differs.",
        "",
        f"Figures present: {len(FIGURES) - len(missing)} of {len(FIGURES)}"
        + (f" (missing: {', '.join(map(str, missing))})" if missing else "")
        + ".",
        "",
    ]
    if profile != "thesis":
        lines += [
            f"**These are {profile}-profile figures**: small models trained for minutes on a CPU (every "
            "deviation from the thesis is listed in docs/DISCREPANCIES.md, section Profiles), meant to show "
            "that each family learns, not to reproduce the thesis's numbers.",
            "",
        ]
    if run_dir is not None and Path(run_dir).is_dir():
        from xrutils import learning

        lines += learning.summary_lines(learning.write_summary(fig_dir, run_dir, profile))
        if (fig_dir / "overview.png").exists():
            lines += ["![each family's final baseline samples](overview.png)", ""]
        if (fig_dir / "learning.png").exists():
            lines += ["![FD8 of every grid against training time](learning.png)", ""]
    summaries = fig_dir / "summaries"
    for key in [*map(str, FIGURES), *SUPPLEMENTARY]:
        s = FIGURES[int(key)] if key.isdigit() else SUPPLEMENTARY[key]
        e = entries.get(key)
        title = f"Figure {key}" if key.isdigit() else f"Supplementary Figure {key}"
        if e is None:
            if key.isdigit():
                lines += [
                    f"## {title} — missing",
                    "",
                    f"Not generated yet: run `{STUDIES[s.study].notebook}` "
                    f"(`make figures PROFILE={profile}`).",
                    "",
                ]
            continue
        files = e["files"]
        lines += [
            f"## {title} — [{files['png']}]({files['png']}) · [pdf]({files['pdf']})",
            "",
            f"*Caption:* {e['caption']}",
            "",
        ]
        if e.get("note"):
            lines += [f"*Reproduction note:* {e['note']}", ""]
        if e.get("notes"):
            lines += [f"*This build:* {e['notes']}", ""]
        lines += [
            f"- Notebook: `{e['notebook']}` (executed copy: `{e.get('executed_notebook', '')}`)",
            f"- Parameters: `{json.dumps(e['parameters'], sort_keys=True, default=str)}`",
            f"- Run folders: {_fmt_runs(e.get('runs', []))}",
            f"- Commit: `{e['commit']}`",
            f"- Data source: {e['data_source']}",
            f"- Profile: {e['profile']}; created {e.get('created', '?')}",
            "",
        ]
    studies_with_summary = [s for s in STUDIES if (summaries / f"{s}.md").exists()]
    if studies_with_summary:
        lines += ["# Study summaries (generated at the end of each study notebook)", ""]
        for s in studies_with_summary:
            lines += [(summaries / f"{s}.md").read_text().strip(), ""]
    out = fig_dir / "FIGURES.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    from xrutils.studies.results import write_results

    write_results(fig_dir, profile)  # RESULTS.md next to it: each thesis question and this build's answer
    if require_all and missing:
        raise FileNotFoundError(
            f"{out}: figure(s) {missing} are missing; their study notebooks did not write them"
        )
    return out


def timing(fig_dir: str | Path, run_dir: str | Path) -> str:
    """Wall time of every executed notebook of a build (papermill's own record), slowest first, and the span."""
    from xrutils.learning import papermill_times

    rows = []
    paths = [*Path(run_dir).glob("*/notebook.ipynb"), *Path(fig_dir).glob("notebooks/*.ipynb")]
    for path in paths:
        t = papermill_times(path)
        if t is not None:
            name = path.parent.name if path.name == "notebook.ipynb" else path.stem
            rows.append((t[0], name, t[1], t[2]))
    if not rows:
        return "no executed notebooks found"
    rows.sort(reverse=True)
    span = (max(r[3] for r in rows) - min(r[2] for r in rows)).total_seconds()
    lines = [f"{d:8.1f} s  {name}" for d, name, _, _ in rows]
    lines += [
        f"{sum(r[0] for r in rows):8.1f} s  sum over {len(rows)} notebooks",
        f"{span:8.1f} s  first start to last end",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrutils.figures", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("index", help="write FIGURES.md from the index entries")
    p.add_argument("--fig-dir", required=True)
    p.add_argument("--profile", required=True)
    p.add_argument("--require-all", action="store_true", help="fail when a thesis figure is missing")
    p.add_argument("--run-dir", default=None, help="the build's run folders: adds the learning summary")
    t = sub.add_parser("timing", help="wall time per executed notebook of a build")
    t.add_argument("--fig-dir", required=True)
    t.add_argument("--run-dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "timing":
        print(timing(args.fig_dir, args.run_dir))
        return 0
    try:
        out = build_index(args.fig_dir, args.profile, require_all=args.require_all, run_dir=args.run_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
