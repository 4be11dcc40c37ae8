"""Do generated X-rays work as training data? Finding classifiers trained on synthetic images, tested on real ones.

The thesis's title asks for "training data"; its conclusion calls the DDPM's images "the most suitable X-ray images
to be used by other machine learning algorithms", but it never trains one on them (issue 13). Here a binary finding
classifier (the project's :class:`~xrutils.evaluators.classifier.SimpleCNN` with a logit head) is trained under four
protocols and always tested on the same patient-disjoint real test set:

* ``TRTR``: trained on the real training images (the reference);
* ``TSTR``: trained on one family's synthetic images only (a generator per class made them);
* ``TRTS``: the TRTR classifier tested on the family's synthetic images: are the generated classes separable at all?
* ``AUG``: trained on a fraction of the real training images plus the family's synthetic images (and ``REAL``, the
  same fraction of real images alone, its reference).

Every protocol is trained with several classifier seeds. A protocol's ROC AUC and balanced accuracy are the mean
over its seeds; their 95 % intervals come from a patient-level cluster bootstrap of the test set (whole patients
drawn with replacement, every seed's predictions resampled together). Paired tests use the same bootstrap draws for
both sides (the same test patients), so the test-set noise they share cancels; p-values are Holm-corrected by the
caller's family of comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from xrutils.data.ranges import to_range
from xrutils.evaluators.classifier import CLASSIFIER_BATCH, CLASSIFIER_RANGE, SimpleCNN
from xrutils.evaluators.stats import ALPHA, Clusters, holm

SYNTHETIC_PATIENT = -1  # patient id of a generated image: it belongs to no patient


@dataclass
class LabelledSet:
    """uint8 images (N, 1, S, S), binary labels (N,) and the patient of each image (N,; -1 for a generated one)."""

    images: torch.Tensor
    labels: np.ndarray
    patients: np.ndarray

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.patients = np.asarray(self.patients, dtype=np.int64).reshape(-1)
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(
                f"LabelledSet: images are {self.images.dtype} {tuple(self.images.shape)}; expected uint8 (N, 1, S, S)"
            )
        if self.labels.size != n or self.patients.size != n:
            raise ValueError(
                f"LabelledSet: {n} images, {self.labels.size} labels, {self.patients.size} patient ids"
            )
        if not np.isin(self.labels, (0, 1)).all():
            raise ValueError(f"LabelledSet: labels must be 0 or 1, got {sorted(set(self.labels.tolist()))}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def counts(self) -> tuple[int, int]:
        """(negatives, positives)."""
        return int((self.labels == 0).sum()), int((self.labels == 1).sum())

    def subset(self, rows: np.ndarray) -> LabelledSet:
        rows = np.asarray(rows, dtype=np.int64)
        return LabelledSet(self.images[torch.from_numpy(rows)], self.labels[rows], self.patients[rows])

    @staticmethod
    def concat(sets: Sequence[LabelledSet]) -> LabelledSet:
        return LabelledSet(
            torch.cat([s.images for s in sets]),
            np.concatenate([s.labels for s in sets]),
            np.concatenate([s.patients for s in sets]),
        )


def patient_fraction(data: LabelledSet, fraction: float, seed: int) -> LabelledSet:
    """A share ``fraction`` of ``data``'s patients (all their images), drawn per class so that both classes keep
    images: patients are shuffled with ``seed`` and taken until the fraction of each class's images is reached."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction}; expected 0 < fraction <= 1")
    if fraction == 1:
        return data
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in (0, 1):
        rows = np.flatnonzero(data.labels == label)
        patients = np.unique(data.patients[rows])
        rng.shuffle(patients)
        want, taken = max(1, round(fraction * rows.size)), 0
        for p in patients:
            if taken >= want:
                break
            mine = rows[data.patients[rows] == p]
            keep.extend(mine.tolist())
            taken += mine.size
    return data.subset(np.sort(np.array(keep, dtype=np.int64)))


# ----------------------------------------------------------------------------------------------------------------
# the classifier


def _inputs(images: torch.Tensor) -> torch.Tensor:
    return to_range(images, CLASSIFIER_RANGE)


def train_finding_classifier(
    train: LabelledSet,
    *,
    seed: int,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = CLASSIFIER_BATCH,
    device: str | torch.device = "cpu",
) -> SimpleCNN:
    """A SimpleCNN trained ``epochs`` epochs on ``train`` (Adam, BCE on the logit, each class weighted by the
    inverse of its share so that both count equally; horizontal flips as augmentation), all randomness from
    ``seed``. The last epoch's weights are kept: no validation set is carved out of the training data, so every
    protocol trains on all it is given and is judged only on the real test set."""
    neg, pos = train.counts
    if neg == 0 or pos == 0:
        raise ValueError(
            f"train_finding_classifier: {neg} negative and {pos} positive training images; need both"
        )
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SimpleCNN(train.images.shape[-1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_all = _inputs(train.images)
    y_all = torch.from_numpy(train.labels).float()
    w_all = torch.where(y_all == 1, len(train) / (2 * pos), len(train) / (2 * neg))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(train), generator=g)
        flips = torch.rand(len(train), generator=g) < 0.5
        for start in range(0, len(train), batch_size):
            idx = perm[start : start + batch_size]
            x = x_all[idx].clone()
            f = flips[idx]
            x[f] = x[f].flip(-1)
            logit = _logit(model, x.to(device))
            loss = F.binary_cross_entropy_with_logits(
                logit, y_all[idx].to(device), weight=w_all[idx].to(device)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def _logit(model: SimpleCNN, x: torch.Tensor) -> torch.Tensor:
    """The SimpleCNN's pre-sigmoid output (B,): its last layer, not the sigmoid, for a numerically sound BCE."""
    h = model.features(x).flatten(1)
    return model.fc2(F.relu(model.fc1(h))).squeeze(1)


@torch.no_grad()
def predict(model: SimpleCNN, images: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """P(positive) of each image (N,)."""
    dev = next(model.parameters()).device
    out = [
        torch.sigmoid(_logit(model, _inputs(images[i : i + batch_size]).to(dev))).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).double().numpy()


# ----------------------------------------------------------------------------------------------------------------
# metrics with patient-level intervals


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC from ranks (the Mann-Whitney statistic; ties count half); NaN when a class is missing. Not sklearn's
    roc_auc_score (the judges' choice): this runs on every bootstrap draw, where a draw without one class must give
    NaN, not an error."""
    labels = np.asarray(labels)
    pos, neg = int((labels == 1).sum()), int((labels == 0).sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Mean of sensitivity and specificity at ``threshold`` (the classifiers are trained class-balanced, so 0.5 is
    their operating point); NaN when a class is missing."""
    labels = np.asarray(labels)
    pred = np.asarray(scores) >= threshold
    pos, neg = labels == 1, labels == 0
    if not pos.any() or not neg.any():
        return math.nan
    return float((pred[pos].mean() + (~pred[neg]).mean()) / 2)


METRICS = {"auc": roc_auc, "balanced_accuracy": balanced_accuracy}


def _seed_mean(metric, labels: np.ndarray, preds: np.ndarray, rows: np.ndarray | None = None) -> float:
    """The metric of each seed's predictions (rows of ``preds``: seeds) on ``rows`` of the test set, averaged."""
    if rows is None:
        rows = np.arange(labels.size)
    return float(np.mean([metric(labels[rows], p[rows]) for p in preds]))


def _draws(test_patients: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    clusters = Clusters(test_patients)
    rng = np.random.default_rng(seed)
    return [clusters.draw(rng) for _ in range(n_boot)]


def replicates(labels: np.ndarray, preds: np.ndarray, draws: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per metric, the seed-mean metric of ``preds`` (seeds x test images) on each bootstrap draw of the test set:
    what a protocol's interval and every paired test of it are read from (computed once per protocol)."""
    preds = np.atleast_2d(preds)
    return {name: np.array([_seed_mean(fn, labels, preds, d) for d in draws]) for name, fn in METRICS.items()}


def _summary(
    labels: np.ndarray, preds: np.ndarray, reps: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    out = {}
    for name, metric in METRICS.items():
        lo, hi = np.nanquantile(reps[name], [ALPHA / 2, 1 - ALPHA / 2])
        per_seed = [metric(labels, p) for p in np.atleast_2d(preds)]
        out[name] = {
            "value": float(np.mean(per_seed)),
            "lo": float(lo),
            "hi": float(hi),
            "per_seed": [float(v) for v in per_seed],
            "seed_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
            "n_seeds": len(per_seed),
        }
    return out


def _gap_test(gap: float, reps: np.ndarray, n_boot: int) -> dict[str, float]:
    reps = reps[~np.isnan(reps)]
    lo, hi = np.quantile(reps, [ALPHA / 2, 1 - ALPHA / 2])
    p = 2.0 * min(float(np.mean(reps <= 0)), float(np.mean(reps >= 0)))
    return {
        "gap": float(gap),
        "lo": float(lo),
        "hi": float(hi),
        "p_value": min(1.0, max(p, 1.0 / n_boot)),
        "n_boot": int(reps.size),
    }


def score(
    labels: np.ndarray, preds: np.ndarray, patients: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """AUC and balanced accuracy of ``preds`` (seeds x test images): the mean over seeds, a 95 % patient-level
    cluster-bootstrap interval of that mean, and the seeds' own values and spread."""
    return _summary(labels, preds, replicates(labels, preds, _draws(patients, n_boot, seed)))


def paired_test(
    labels: np.ndarray,
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    patients: np.ndarray,
    *,
    metric: str = "auc",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Is protocol a's metric different from b's on the same test set? The gap of their seed means, its 95 %
    interval from the same patient-level bootstrap draws for both, and the two-sided bootstrap p-value
    ``2 min(P*(gap <= 0), P*(gap >= 0))`` (floored at 1 / n_boot)."""
    fn = METRICS[metric]
    a, b = np.atleast_2d(preds_a), np.atleast_2d(preds_b)
    draws = _draws(patients, n_boot, seed)
    gap = _seed_mean(fn, labels, a) - _seed_mean(fn, labels, b)
    return _gap_test(gap, replicates(labels, a, draws)[metric] - replicates(labels, b, draws)[metric], n_boot)


# ----------------------------------------------------------------------------------------------------------------
# the protocols


@dataclass(frozen=True)
class Protocol:
    """One classifier protocol: what it trains on, what it is tested on."""

    name: str  # "TRTR", "TSTR", "TRTS", "AUG", "REAL"
    family: str = ""  # the generator family of the synthetic images ("" for TRTR and REAL)
    fraction: float = 1.0  # share of the real training patients (AUG and REAL)

    @property
    def key(self) -> str:
        parts = (
            [self.name]
            + ([self.family] if self.family else [])
            + ([f"{self.fraction:g}"] if self.name in ("AUG", "REAL") else [])
        )
        return "/".join(parts)


def _entry(proto: Protocol, data: LabelledSet, scores: dict) -> dict:
    return {
        "protocol": proto.name,
        "family": proto.family,
        "fraction": proto.fraction,
        "n_train": len(data),
        "train_counts": list(data.counts),
        "scores": scores,
    }


def check_patient_disjoint(*sets: tuple[str, LabelledSet]) -> None:
    """Raise when a real patient appears in two of the named sets (generated images belong to no patient)."""
    seen: dict[int, str] = {}
    for name, s in sets:
        for p in np.unique(s.patients[s.patients != SYNTHETIC_PATIENT]).tolist():
            if p in seen and seen[p] != name:
                raise ValueError(f"patient {p} is in both the {seen[p]} and the {name} set: the split leaks")
            seen[p] = name


def run_protocols(
    real_train: LabelledSet,
    real_test: LabelledSet,
    synthetic: dict[str, LabelledSet],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    fractions: Sequence[float] = (0.1, 0.25, 1.0),
    epochs: int = 10,
    lr: float = 1e-3,
    n_boot: int = 1000,
    device: str | torch.device = "cpu",
    progress=None,
) -> dict:
    """Every protocol for every family in ``synthetic`` ({family: its labelled generated images}), each with
    ``seeds`` classifier seeds, tested on ``real_test``; the scores, and paired tests of each family's TSTR against
    TRTR, of the families' TSTR against each other, and of each AUG against REAL at the same fraction.

    Returns ``{"protocols": {key: {"protocol", "family", "fraction", "n_train", "scores"}}, "tests": [...],
    "test_set": {...}}``; the predictions stay out of it (they are in ``"_preds"`` for the caller to drop)."""
    check_patient_disjoint(("training", real_train), ("test", real_test))
    y, patients = real_test.labels, real_test.patients
    draws = _draws(patients, n_boot, 0)  # one set of test-patient draws behind every interval and paired test
    preds: dict[str, np.ndarray] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    out: dict = {"protocols": {}, "tests": []}

    def fit(proto: Protocol, data: LabelledSet) -> list[SimpleCNN]:
        if progress:
            progress(proto.key)
        models = [train_finding_classifier(data, seed=s, epochs=epochs, lr=lr, device=device) for s in seeds]
        preds[proto.key] = np.stack([predict(m, real_test.images) for m in models])
        reps[proto.key] = replicates(y, preds[proto.key], draws)
        out["protocols"][proto.key] = _entry(proto, data, _summary(y, preds[proto.key], reps[proto.key]))
        return models

    trtr = fit(Protocol("TRTR"), real_train)
    for family, syn in synthetic.items():
        fit(Protocol("TSTR", family), syn)
        # TRTS: the real-trained classifiers on the family's images (each generated image its own cluster)
        p = np.stack([predict(m, syn.images) for m in trtr])
        scores = score(syn.labels, p, np.arange(len(syn)), n_boot=n_boot)
        out["protocols"][Protocol("TRTS", family).key] = _entry(Protocol("TRTS", family), real_train, scores)
    for fraction in fractions:
        part = patient_fraction(real_train, fraction, seed=0)
        real = Protocol("REAL", fraction=fraction)
        if fraction < 1:
            fit(real, part)
        else:  # all the real data alone is TRTR
            preds[real.key], reps[real.key] = preds["TRTR"], reps["TRTR"]
            out["protocols"][real.key] = {**out["protocols"]["TRTR"], "protocol": "REAL"}
        for family, syn in synthetic.items():
            fit(Protocol("AUG", family, fraction), LabelledSet.concat([part, syn]))

    def test(a: str, b: str, question: str) -> None:
        for metric, fn in METRICS.items():
            gap = _seed_mean(fn, y, preds[a]) - _seed_mean(fn, y, preds[b])
            test_ = _gap_test(gap, reps[a][metric] - reps[b][metric], n_boot)
            out["tests"].append({"a": a, "b": b, "metric": metric, "question": question, **test_})

    families = list(synthetic)
    for f in families:
        test(Protocol("TSTR", f).key, "TRTR", "TSTR against TRTR")
    for i, f in enumerate(families):
        for g in families[i + 1 :]:
            test(Protocol("TSTR", f).key, Protocol("TSTR", g).key, "TSTR: family against family")
    for fraction in fractions:
        for f in families:
            test(
                Protocol("AUG", f, fraction).key,
                Protocol("REAL", fraction=fraction).key,
                "augmentation against the same real data alone",
            )
    # Holm within each question and metric: the family of comparisons one conclusion rests on (a bootstrap p-value
    # is at least 1 / n_boot, so n_boot must exceed the family's size / 0.05 for any test to survive)
    for metric, question in {(t["metric"], t["question"]) for t in out["tests"]}:
        rows = [t for t in out["tests"] if t["metric"] == metric and t["question"] == question]
        for t, adjusted in zip(rows, holm([t["p_value"] for t in rows]), strict=True):
            t["p_holm"] = adjusted
    out["test_set"] = {
        "n": len(real_test),
        "counts": real_test.counts,
        "patients": int(np.unique(patients).size),
    }
    out["_preds"] = preds
    return out
