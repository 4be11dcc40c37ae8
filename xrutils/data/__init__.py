"""Where images come from: NIH ChestX-ray14 (:mod:`.nih`), the built-in phantom X-rays (:mod:`.phantom`) and
ChestMNIST (:mod:`.chestmnist`), decoded once into the resized cache (:mod:`.cache`) and served as shuffled
batches in a model's value range (:mod:`.loader`, :mod:`.ranges`). Knows nothing of models."""

from xrutils.data.cache import cached_images, resize_gray
from xrutils.data.chestmnist import read_chestmnist
from xrutils.data.loader import ImageSet, batches, load_images, native_resolution, resolve_root
from xrutils.data.nih import LABELS, BadImageError, index_split, label_counts, read_metadata, read_split
from xrutils.data.phantom import ensure_phantom, make_phantom, phantom_image, phantom_root
from xrutils.data.ranges import GAN_RANGE, UNIT_RANGE, convert, to_range, to_uint8

__all__ = [
    "GAN_RANGE",
    "LABELS",
    "UNIT_RANGE",
    "BadImageError",
    "ImageSet",
    "batches",
    "cached_images",
    "convert",
    "ensure_phantom",
    "index_split",
    "label_counts",
    "load_images",
    "make_phantom",
    "native_resolution",
    "phantom_image",
    "phantom_root",
    "read_chestmnist",
    "read_metadata",
    "read_split",
    "resize_gray",
    "resolve_root",
    "to_range",
    "to_uint8",
]
