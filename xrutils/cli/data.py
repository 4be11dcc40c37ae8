"""``python -m xrutils data phantom|cache|info``: generate the phantom dataset, build the resized cache, count labels.

``data cache`` prints one JSON object as its last line (split, size, images, missing, seconds, images_per_s, path,
reused, ...), so scripts and the benchmark can parse it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from xrutils.data.cache import RESIZE_METHODS, available_cores, cached_images
from xrutils.data.nih import index_split, label_counts, metadata_path
from xrutils.data.phantom import make_phantom
from xrutils.paths import NIH_ROOT_ENV, nih_root_from_env


def add_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: phantom generation, resized cache, label counts")
    dsub = data.add_subparsers(dest="data_command", required=True)

    p = dsub.add_parser("phantom", help="write a phantom chest X-ray dataset in NIH layout")
    p.add_argument("--out", required=True, help="output folder (created; must not hold a dataset)")
    p.add_argument("--n", type=int, default=2000, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="native image side in pixels")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(func=cmd_phantom)

    c = dsub.add_parser("cache", help="build (or reuse) the resized uint8 cache of an NIH-layout folder")
    c.add_argument("--root", default=None, help=f"NIH-layout folder (default: ${NIH_ROOT_ENV})")
    c.add_argument("--size", type=int, default=64, help="image side after resizing")
    c.add_argument("--split", choices=("train_val", "test", "all"), default="train_val")
    c.add_argument("--max-images", type=int, default=0, help="keep the first N images by name (0 = all)")
    c.add_argument("--method", choices=RESIZE_METHODS, default=RESIZE_METHODS[0])
    c.add_argument(
        "--skip-bad", action="store_true", help="count and skip undecodable images instead of failing"
    )
    c.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_cache)

    i = dsub.add_parser("info", help="images per label and split (the data of thesis Figure 1)")
    i.add_argument("--root", default=None, help=f"NIH-layout folder (default: ${NIH_ROOT_ENV})")
    i.add_argument(
        "--csv", default=None, help="metadata file name (default: Data_Entry_2017.csv, else v2020)"
    )
    i.add_argument("--json", action="store_true", help="print the counts as JSON rows instead of a table")
    i.set_defaults(func=cmd_info)


def _root(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser()
    env = nih_root_from_env()
    if env is None:
        raise FileNotFoundError(f"no --root given and ${NIH_ROOT_ENV} is not set")
    return env


def cmd_phantom(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = make_phantom(args.out, args.n, args.seed, args.size, workers=args.workers)
    secs = time.perf_counter() - t0
    n_test = len((out / "test_list.txt").read_text().split())
    print(
        json.dumps(
            {
                "out": str(out),
                "n": args.n,
                "seed": args.seed,
                "size": args.size,
                "train_val": args.n - n_test,
                "test": n_test,
                "seconds": round(secs, 3),
                "images_per_s": round(args.n / secs, 1),
            }
        )
    )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    root = _root(args.root)
    t0 = time.perf_counter()
    index = index_split(root, args.split, max_images=args.max_images)
    res = cached_images(
        index.names,
        index.paths,
        args.size,
        args.method,
        missing=index.missing,
        skip_bad=args.skip_bad,
        workers=args.workers,
        progress=not args.no_progress,
    )
    secs = time.perf_counter() - t0
    n = int(res.images.shape[0])
    print(
        f"{'reused' if res.reused else 'built'} cache of {n} images at {args.size}px in {res.path}",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "split": args.split,
                "size": args.size,
                "method": args.method,
                "images": n,
                "missing": index.missing,
                "skipped": len(res.skipped),
                "seconds": round(secs, 3),
                "images_per_s": round(n / max(secs, 1e-9), 1),
                "workers": res.workers,
                "cores": available_cores(),
                "path": str(res.path),
                "reused": res.reused,
                "root": str(root),
            }
        )
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    root = _root(args.root)
    counts = label_counts(root, args.csv)
    if args.json:
        print(json.dumps(counts.to_dict(orient="records")))
        return 0
    table = counts.pivot(index="label", columns="split", values="count").reindex(counts["label"].unique())
    table = table[["train_val", "test"]]
    table["all"] = table.sum(axis=1)
    n_split = {
        s: len((root / f).read_text().split())
        for s, f in (("train_val", "train_val_list.txt"), ("test", "test_list.txt"))
    }
    print(
        f"{metadata_path(root, args.csv)}: {n_split['train_val']} train_val + {n_split['test']} test images "
        f"listed (counts from the metadata and list files, not the files on disk)"
    )
    print(table.to_string())
    return 0
