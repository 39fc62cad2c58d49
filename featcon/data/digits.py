"""Offline real-data benchmark: real handwritten digits composited on label-independent backgrounds.

The analogue of the paper's red-padded CIFAR-10 (Appendix F.4) and of its background features
(Definition 3.1): the digit (core feature) decides the label; the background is drawn
independently of the label. ID backgrounds are grey textures and grey photographs; OOD
backgrounds are colour photographs. Everything ships inside scikit-learn, scikit-image and
matplotlib, so the set is built offline in about a second.

Splits partition the 1,797 digits of ``sklearn.datasets.load_digits`` (fixed seed):
train 60 %, val 15 %, test 25 %. Background kinds: ``grey`` (ID), ``colour`` (OOD) and
``all`` (both; the teacher's "diverse" pre-training data).
"""
from __future__ import annotations

import functools

import numpy as np

from featcon.data.sources import ArraySource

GREY_BACKGROUNDS = ("brick", "grass", "gravel", "camera", "moon", "coins", "page", "text", "clock")
COLOUR_BACKGROUNDS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina",
                      "immunohistochemistry", "china.jpg", "flower.jpg", "grace_hopper.jpg")
KINDS = ("grey", "colour", "all")
SPLITS = ("train", "val", "test")
DIGIT_RGB = np.array([220.0, 30.0, 30.0])  # red digits, as in DATA.md's prototype


@functools.lru_cache(maxsize=None)
def _background_images(kind: str) -> tuple[np.ndarray, ...]:
  import skimage.data  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_sample_image  # pylint: disable=g-import-not-at-top
  names = {"grey": GREY_BACKGROUNDS, "colour": COLOUR_BACKGROUNDS}[kind]
  out = []
  for n in names:
    if n.endswith(".jpg") and n != "grace_hopper.jpg":
      img = load_sample_image(n)
    elif n == "grace_hopper.jpg":
      import matplotlib.cbook  # pylint: disable=g-import-not-at-top
      from PIL import Image  # pylint: disable=g-import-not-at-top
      with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        img = np.asarray(Image.open(f).convert("RGB"))
    else:
      img = getattr(skimage.data, n)()
    img = np.asarray(img)
    if img.ndim == 2:
      img = np.repeat(img[..., None], 3, axis=-1)
    out.append(img[..., :3].astype(np.uint8))
  return tuple(out)


@functools.lru_cache(maxsize=None)
def load_raw() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's 1,797 handwritten digits, unsplit: grey values (N, 8, 8) float32 in [0, 1]
  (the 0–16 ink counts / 16) and labels (N,) int64. The one loader of the raw digits; each user
  draws its own documented split from it. Cached and read-only (index, do not write).

  Needs scikit-learn (the `analysis` extra: `pip install -e ".[analysis]"`).
  """
  try:
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('the scikit-learn digits need scikit-learn: pip install -e ".[analysis]"'
                      ) from e
  d = load_digits()
  images, labels = d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels


@functools.lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
  """The benchmark's split of `load_raw` (module docstring): 60 / 15 / 25 %, seed 0."""
  images, labels = load_raw()
  perm = np.random.default_rng(0).permutation(len(labels))
  n_train, n_val = int(0.6 * len(labels)), int(0.15 * len(labels))
  parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val],
           "test": perm[n_train + n_val:]}
  return images, labels, parts


def _upsample(digit: np.ndarray, size: int) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  im = Image.fromarray((digit * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
  return np.asarray(im, dtype=np.float32) / 255.0


def make_digits(kind: str, split: str, *, image_size: int = 32, copies: int = 1,
                digit_size: int = 20, max_shift: int = 3, seed: int = 0) -> ArraySource:
  """Digits-on-backgrounds images: ``x = (1 - a) * background + a * red``, ``a`` = ink.

  Args:
    kind: background kind, one of ``KINDS`` (grey = ID, colour = OOD, all = both).
    split: one of ``SPLITS`` (a fixed partition of the 1,797 sklearn digits).
    image_size: output side in pixels.
    copies: each digit is composited on this many independent backgrounds.
    digit_size: side of the upsampled digit; max_shift: uniform random offset in pixels.
    seed: background draws (crop, image, shift) for this (kind, split).
  Returns:
    An ArraySource of uint8 (N, image_size, image_size, 3) images and digit labels.
  """
  if kind not in KINDS:
    raise ValueError(f"digits kind={kind!r} is not allowed; allowed: {', '.join(KINDS)}")
  if split not in SPLITS:
    raise ValueError(f"digits split={split!r} is not allowed; allowed: {', '.join(SPLITS)}")
  images, labels, parts = _digits()
  idx = np.tile(parts[split], copies)
  pools = [_background_images("grey"), _background_images("colour")]
  salt = [KINDS.index(kind), SPLITS.index(split), seed]
  rng = np.random.default_rng(np.random.SeedSequence([20240, *salt]))
  out = np.empty((len(idx), image_size, image_size, 3), np.uint8)
  cache = {}
  for n, i in enumerate(idx):
    pool = pools[0] if kind == "grey" else pools[1] if kind == "colour" else pools[rng.integers(2)]
    bg_img = pool[rng.integers(len(pool))]
    crop = int(rng.integers(image_size, min(bg_img.shape[:2]) // 2 + 1))
    y0 = rng.integers(bg_img.shape[0] - crop + 1)
    x0 = rng.integers(bg_img.shape[1] - crop + 1)
    bg = bg_img[y0:y0 + crop, x0:x0 + crop]
    if crop != image_size:
      from PIL import Image  # pylint: disable=g-import-not-at-top
      bg = np.asarray(Image.fromarray(bg).resize((image_size, image_size), Image.BILINEAR))
    bg = bg.astype(np.float32)
    if i not in cache:
      cache[i] = _upsample(images[i], digit_size)
    ink = np.zeros((image_size, image_size), np.float32)
    off = (image_size - digit_size) // 2
    dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
    ink[off + dy:off + dy + digit_size, off + dx:off + dx + digit_size] = cache[i]
    a = ink[..., None]
    out[n] = np.clip((1 - a) * bg + a * DIGIT_RGB, 0, 255).astype(np.uint8)
  return ArraySource(out, labels[idx])
