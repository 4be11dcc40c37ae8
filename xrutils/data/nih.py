"""NIH ChestX-ray14 reader (Wang et al., "ChestX-ray8", CVPR 2017).

A root folder as the NIH distributes it:

```
<root>/
  images/*.png                       flat (also accepted: PNGs directly in <root>, as the original code had them)
  images_001/images/*.png ... images_012/images/*.png    the official archive layout
  Data_Entry_2017.csv                2017 format ("058Y" ages, "000" follow-ups, trailing comma) -- preferred
  Data_Entry_2017_v2020.csv          v2020 format (integer ages, no trailing comma) -- used without a 2017 file
  train_val_list.txt, test_list.txt  the official patient-disjoint split (86,524 + 25,596 names)
```

Labels are 15-way multi-hot in the fixed order :data:`LABELS` (the 14 findings in NIH order, then "No Finding").
Images become single-channel uint8: the release holds a few RGBA files (R=G=B) and may hold 16-bit files.
Listed images that are not on disk are counted and reported (the shared 40-image sample lists 112,120); an
undecodable image raises :class:`BadImageError` naming the file, unless the caller asks to skip bad images.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from xrutils.errors import DataError
from xrutils.log import get as _get_log

_log = _get_log("data")

LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
    "No Finding",
)
LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
CSV_NAMES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")  # preference order
SPLIT_FILES = {
    "train_val": ("train_val_list.txt",),
    "test": ("test_list.txt",),
    "all": ("train_val_list.txt", "test_list.txt"),
}
_REQUIRED_COLUMNS = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
)
_AGE_RE = re.compile(r"^\s*(\d+)\s*([YMD]?)\s*$", re.IGNORECASE)


class BadImageError(DataError):
    """An image file exists but cannot be decoded into a single-channel picture."""


# ----------------------------------------------------------------------------------------------------------------
# metadata


def metadata_path(root: str | Path, csv_name: str | None = None) -> Path:
    """The Data_Entry CSV of ``root``: ``csv_name`` when given, else the 2017 file when present, else v2020."""
    root = Path(root)
    if csv_name:
        if not (root / csv_name).is_file():
            raise FileNotFoundError(f"{root / csv_name}: metadata file not found")
        return root / csv_name
    for name in CSV_NAMES:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root}: no {' or '.join(CSV_NAMES)}; is this an NIH ChestX-ray14 folder?")


def _parse_age(value: str) -> int:
    """'058Y' (2017), '58' (v2020), '011M' / '025D' (months, days) -> whole years."""
    m = _AGE_RE.match(str(value))
    if not m:
        raise DataError(f"age {value!r} is neither an integer nor of the form 058Y / 011M / 025D")
    n, unit = int(m.group(1)), m.group(2).upper()
    return n // 12 if unit == "M" else n // 365 if unit == "D" else n


def read_metadata(root: str | Path, csv_name: str | None = None) -> pd.DataFrame:
    """Every row of the Data_Entry CSV, indexed by image name.

    Columns: ``labels`` (the raw "A|B" string), ``follow_up``, ``patient_id``, ``age`` (years), ``sex``, ``view``.
    Both published formats give the same frame (the 2017 file's trailing comma makes an empty extra column).
    Note that the two files differ in content too: v2020 carries revised labels for a few hundred images (e.g.
    Pneumonia 1,431 vs 1,353 images in the 2017 file).
    """
    path = metadata_path(root, csv_name)
    st = path.stat()
    return _read_metadata_cached(str(path), st.st_mtime_ns, st.st_size).copy()


@functools.lru_cache(maxsize=4)
def _read_metadata_cached(path_str: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """Parse once per (file, mtime, size): the full NIH CSV takes ~0.5 s and every split load needs it."""
    path = Path(path_str)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(
            f"{path}: not a readable NIH metadata CSV ({type(e).__name__}: {str(e).strip()}); expected "
            f"comma-separated UTF-8 rows with the NIH columns {list(_REQUIRED_COLUMNS)}"
        ) from e
    missing = [c for c in _REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected the NIH columns {list(_REQUIRED_COLUMNS)}"
        )
    try:
        ages = [_parse_age(a) for a in df["Patient Age"]]
        follow = pd.to_numeric(df["Follow-up #"], errors="raise").astype(np.int64)
        patient = pd.to_numeric(df["Patient ID"], errors="raise").astype(np.int64)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e
    out = pd.DataFrame(
        {
            "labels": df["Finding Labels"].str.strip().to_numpy(),
            "follow_up": follow.to_numpy(),
            "patient_id": patient.to_numpy(),
            "age": np.asarray(ages, dtype=np.int64),
            "sex": df["Patient Gender"].to_numpy(),
            "view": df["View Position"].to_numpy(),
        },
        index=pd.Index(df["Image Index"].str.strip(), name="name"),
    )
    if out.index.has_duplicates:
        dup = out.index[out.index.duplicated()][:3].tolist()
        raise DataError(f"{path}: duplicate image names, e.g. {dup}")
    out.attrs["path"] = str(path)
    return out


def multi_hot(label_strings: pd.Series | list[str], *, source: str = "labels") -> np.ndarray:
    """["Cardiomegaly|Effusion", "No Finding"] -> uint8 (N, 15) in :data:`LABELS` order; unknown labels raise."""
    s = pd.Series(list(label_strings), dtype=str)
    parts = s.str.split("|").explode()
    idx = parts.str.strip().map(LABEL_INDEX)
    if idx.isna().any():
        bad = sorted(set(parts[idx.isna()].tolist()))[:5]
        raise DataError(f"{source}: unknown finding label(s) {bad}; expected names from {list(LABELS)}")
    out = np.zeros((len(s), len(LABELS)), dtype=np.uint8)
    out[parts.index.to_numpy(), idx.to_numpy(dtype=np.int64)] = 1
    return out


def read_split(root: str | Path, split: str) -> list[str]:
    """Image names of ``split`` ("train_val", "test" or "all" = both lists), in file order."""
    if split not in SPLIT_FILES:
        raise DataError(f"split={split!r} is not allowed; expected one of {list(SPLIT_FILES)}")
    names: list[str] = []
    for fname in SPLIT_FILES[split]:
        path = Path(root) / fname
        if not path.is_file():
            raise FileNotFoundError(f"{path}: split list not found (needed for split={split!r})")
        try:
            listed = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not a text file of image names ({e})") from e
        if not listed:
            raise DataError(
                f"{path}: the split list is empty; expected one image name (e.g. 00000001_000.png) a line"
            )
        names += listed
    return names


def label_counts(root: str | Path, csv_name: str | None = None) -> pd.DataFrame:
    """Images per label and split over the FULL metadata (the data of thesis Figure 1).

    Uses the CSV and the two list files only, not the images on disk, so a partial download (or the 40-image
    sample) gives the counts of the whole release. Columns: ``label``, ``split`` ("train_val"/"test"), ``count``.
    ``csv_name`` picks the metadata file (default: Data_Entry_2017.csv, else the v2020 file).
    """
    meta = read_metadata(root, csv_name)
    hot = multi_hot(meta["labels"], source=meta.attrs["path"])
    rows = []
    for split in ("train_val", "test"):
        names = read_split(root, split)
        pos = meta.index.get_indexer(names)
        if (pos < 0).any():
            bad = [n for n, p in zip(names, pos, strict=True) if p < 0][:3]
            raise DataError(
                f"{root}: {int((pos < 0).sum())} name(s) of the {split} list have no row in "
                f"{meta.attrs['path']}, e.g. {bad}"
            )
        counts = hot[pos].sum(axis=0, dtype=np.int64)
        rows += [
            {"label": lab, "split": split, "count": int(c)} for lab, c in zip(LABELS, counts, strict=True)
        ]
    return pd.DataFrame(rows, columns=["label", "split", "count"])


# ----------------------------------------------------------------------------------------------------------------
# images on disk


def find_images(root: str | Path) -> dict[str, Path]:
    """Every PNG under ``root``'s image folders (flat ``images/``, ``images_NNN/images/``, or ``root`` itself)."""
    root = Path(root)
    dirs = [root, root / "images"]
    if root.is_dir():
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.is_dir() and re.fullmatch(r"images_\d+", entry.name):
                dirs += [Path(entry.path), Path(entry.path) / "images"]
    found: dict[str, Path] = {}
    copies: list[str] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for entry in os.scandir(d):
            if not entry.name.lower().endswith(".png"):
                continue
            first = found.setdefault(entry.name, Path(entry.path))
            if first != Path(entry.path):
                if first.stat().st_size != entry.stat().st_size:
                    raise DataError(
                        f"{root}: two different files are named {entry.name}: {first} and {entry.path}; the NIH "
                        f"release names each image once, so remove the wrong one"
                    )
                copies.append(entry.name)
    if copies:
        _log.warning(
            "%s: %d image(s) are stored twice with the same size (e.g. %s); using the copy in the first folder",
            root,
            len(copies),
            copies[0],
        )
    return found


@dataclass
class NIHIndex:
    """The images of one split that exist on disk, with their labels; ``missing`` counts listed but absent ones."""

    root: str
    split: str
    names: list[str]
    paths: list[Path]
    labels: np.ndarray  # uint8 (N, 15)
    patient_ids: np.ndarray  # int64 (N,)
    missing: int = 0
    missing_examples: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def index_split(root: str | Path, split: str, *, max_images: int = 0, verbose: bool = True) -> NIHIndex:
    """Names, paths, labels and patient ids of ``split`` under ``root``, sorted by name.

    Listed images absent from disk are counted (and a few named on stderr when ``verbose``); if none is left the
    call fails. ``max_images`` > 0 keeps the first N present images by name.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: NIH root folder not found")
    meta = read_metadata(root)
    listed = sorted(set(read_split(root, split)))
    pos = meta.index.get_indexer(listed)
    if (pos < 0).any():
        bad = [n for n, p in zip(listed, pos, strict=True) if p < 0][:3]
        raise DataError(
            f"{root}: {int((pos < 0).sum())} name(s) of the {split} list have no row in "
            f"{meta.attrs['path']}, e.g. {bad}"
        )
    on_disk = find_images(root)
    present = [i for i, n in enumerate(listed) if n in on_disk]
    missing = [n for n in listed if n not in on_disk]
    if missing and verbose:
        _log.warning(
            "%s: %d of %d images of split %r are listed but not on disk (e.g. %s); using the %d present",
            root,
            len(missing),
            len(listed),
            split,
            ", ".join(missing[:3]),
            len(present),
        )
    if not present:
        raise FileNotFoundError(
            f"{root}: none of the {len(listed)} images of split {split!r} is on disk "
            f"(looked in images/, images_NNN/images/ and the root itself)"
        )
    if max_images > 0:
        present = present[:max_images]
    names = [listed[i] for i in present]
    rows = meta.iloc[pos[present]]
    return NIHIndex(
        root=str(root),
        split=split,
        names=names,
        paths=[on_disk[n] for n in names],
        labels=multi_hot(rows["labels"], source=meta.attrs["path"]),
        patient_ids=rows["patient_id"].to_numpy(dtype=np.int64),
        missing=len(missing),
        missing_examples=missing[:5],
    )


# ----------------------------------------------------------------------------------------------------------------
# decoding


def stored_bits(arr: np.ndarray) -> int:
    """The bit depth a 16-bit container's pixels were recorded at: the smallest of 8, 10, 12, 14 and 16 that holds
    the largest value. X-ray detectors write 10-, 12- or 14-bit data into 16-bit PNGs; scaling 12-bit data as if it
    spanned 0..65535 would turn the image almost black (mean 10.7 against 171.6 on a 12-bit chest)."""
    top = float(arr.max()) if arr.size else 0.0
    return next(bits for bits in (8, 10, 12, 14, 16) if top <= 2**bits - 1)


def to_gray(img: Image.Image, *, source: str = "image") -> Image.Image:
    """Any PIL image -> mode "L". RGB/RGBA use PIL's luminance (exact for the release's R=G=B files, and what
    torchvision's Grayscale does); 16-bit images are scaled linearly from their recorded depth
    (:func:`stored_bits`: 0..4095 for 12-bit data, 0..65535 for 16-bit) to 0..255 (PIL's own conversion would clip
    everything above 255 to white)."""
    if img.mode == "L":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise BadImageError(f"{source}: 32-bit integer pixels outside 0..65535 (mode {img.mode})")
        full = float(2 ** stored_bits(arr) - 1)
        return Image.fromarray(np.rint(arr * (255.0 / full)).astype(np.uint8), mode="L")
    if img.mode in ("1", "P", "RGB", "RGBA", "LA", "RGBX", "CMYK", "YCbCr", "La", "PA"):
        return img.convert("L")
    raise BadImageError(
        f"{source}: unsupported pixel mode {img.mode!r}; expected 8- or 16-bit grey, RGB or RGBA"
    )


def decode_image(path: str | Path) -> Image.Image:
    """Open and fully decode one image as a single-channel PIL image; :class:`BadImageError` names the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_gray(img, source=str(path))
    except BadImageError:
        raise
    except (OSError, ValueError, SyntaxError) as e:  # PIL's decoders raise these on truncated/corrupt files
        raise BadImageError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
