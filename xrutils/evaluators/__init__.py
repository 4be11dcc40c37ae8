"""Evaluators: the thesis's two judges done right, offline feature-space metrics, likelihood, memorisation, stats.

* :func:`evaluate` (:mod:`.pipeline`): everything below over a set of run folders, one JSON result; its pieces
  are :mod:`.scored` (runs and judges loaded), :mod:`.reference` (the held-out reals, by patient), :mod:`.steps`
  (samples, judges, FD curve, metrics) and :mod:`.ranking` (seeds pooled, rankings per image size).
* :mod:`.judge`: the GAN-discriminator judge (spec §4.1), corrected protocol by default, :class:`Quirks` for the
  original one.
* :mod:`.classifier`: the SimpleCNN judge of Figure 37 (spec §4.7), trained and tested for real.
* :mod:`.features`, :mod:`.metrics`: Fréchet distance, KID, precision/recall in the feature space of an encoder
  trained on real X-rays (optional ImageNet-Inception FID from a local file).
* :mod:`.likelihood`: bits/dim for the VAE (ELBO bound) and the PixelCNN (exact).
* :mod:`.memorisation`: nearest-training-image distances and a grid of the closest pairs.
* :mod:`.samples`: generated samples, once per checkpoint, cached in the run folder.
* :mod:`.stats`: bootstrap intervals, paired bootstrap tests, intervals over seeds.
"""

from xrutils.evaluators.classifier import SimpleCNN, classifier_score, train_classifier
from xrutils.evaluators.features import FeatureExtractor, InceptionFeatures, XrayEncoder, feature_extractor
from xrutils.evaluators.judge import Judge, Quirks, bce_terms, score_curve
from xrutils.evaluators.likelihood import bits_per_dim
from xrutils.evaluators.memorisation import memorisation_report
from xrutils.evaluators.metrics import feature_metrics, frechet_distance, kernel_distance, precision_recall
from xrutils.evaluators.pipeline import evaluate
from xrutils.evaluators.samples import SampleCache, SamplerSpec, sampler_spec
from xrutils.evaluators.stats import bootstrap, bootstrap_mean, paired_bootstrap, seed_interval

__all__ = [
    "FeatureExtractor",
    "InceptionFeatures",
    "Judge",
    "Quirks",
    "SampleCache",
    "SamplerSpec",
    "SimpleCNN",
    "XrayEncoder",
    "bce_terms",
    "bits_per_dim",
    "bootstrap",
    "bootstrap_mean",
    "classifier_score",
    "evaluate",
    "feature_extractor",
    "feature_metrics",
    "frechet_distance",
    "kernel_distance",
    "memorisation_report",
    "paired_bootstrap",
    "precision_recall",
    "sampler_spec",
    "score_curve",
    "seed_interval",
    "train_classifier",
]
