"""What the padded-image experiment (Appendix F.4) trains and tests on: `PaddingData`.

Two sources (config field `source`): "digits", scikit-learn's 8×8 handwritten digits
(`featcon.data.digits.load_raw`) drawn grey by `render.render`; or a registry data set with train
and test splits (e.g. "cifar10"), read as uint8 RGB images and padded by `render.render_rgb`.
"""
import dataclasses

import jax.numpy as jnp
import numpy as np

from featcon.analysis.padding import colours
from featcon.analysis.padding import measures
from featcon.analysis.padding.render import render
from featcon.analysis.padding.render import render_rgb
from featcon.data import digits as digits_lib
from featcon.data import preprocess
from featcon.data import registry


def synthetic_glyphs(seed, n, num_classes=10, side=8):
  """Offline stand-in for digits in tests: one random binary template per class plus noise."""
  rng = np.random.default_rng(seed)
  templates = (rng.random((num_classes, side, side)) < 0.35).astype(np.float32)
  labels = rng.integers(0, num_classes, n).astype(np.int32)
  glyphs = np.clip(templates[labels] + 0.2 * rng.standard_normal((n, side, side)), 0, 1)
  return glyphs.astype(np.float32), labels


def load_digits():
  """The raw scikit-learn digits (`featcon.data.digits.load_raw`): (N, 8, 8) grey values in
  [0, 1] and int32 labels, unsplit."""
  glyphs, labels = digits_lib.load_raw()
  return glyphs, labels.astype(np.int32)


@dataclasses.dataclass
class PaddingData:
  """What the experiment trains and tests on, and how its inputs are made.

  kind: "digits" (x: grey glyphs (N, h, w) float32 in [0, 1], drawn by `render.render`) or "rgb"
  (x: images (N, size, size, 3) uint8, padded by `render.render_rgb`).
  mean_rgb: m, the mean pixel colour (3,) in [0, 1] of the unpadded training content.
  """
  kind: str
  name: str
  train_x: np.ndarray
  train_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  num_classes: int
  size: int
  pad: int
  mean_rgb: np.ndarray = None

  def __post_init__(self):
    if self.kind not in ("digits", "rgb"):
      raise ValueError(f"PaddingData kind={self.kind!r}: allowed 'digits', 'rgb'")
    if self.mean_rgb is None:
      x = np.asarray(self.train_x)   # no float copy: 45k CIFAR images would need 1.1 GB
      if self.kind == "digits":
        self.mean_rgb = np.full(3, x.mean(dtype=np.float64), np.float32)
      else:
        self.mean_rgb = (x.mean((0, 1, 2), dtype=np.float64) / 255.0).astype(np.float32)

  def inputs(self, x, cols, plain=False):
    """Network inputs (N, size, size, 3) in [0, 1] from content x and padding colours (N, 3).

    plain=True: the unpadded input (family 'none'): digits upsampled to the whole canvas; RGB
    images as they are.
    """
    if self.kind == "digits":
      if plain:
        return render(x, jnp.zeros((x.shape[0], 3), jnp.float32), self.size, 0)
      return render(x, cols, self.size, self.pad)
    x = jnp.asarray(x).astype(jnp.float32) / 255.0
    return x if plain else render_rgb(x, cols, self.pad)

  def filter_stats(self, kernel, family="red"):
    """Digits: `measures.filter_colour_stats`; RGB: `measures.filter_pad_stats` with c = the
    family's centre and m = mean_rgb (definitions in their docstrings)."""
    base = colours.base_family(family)
    if self.kind == "digits":
      return measures.filter_colour_stats(kernel, colours.COLOUR_FAMILIES[base])
    return measures.filter_pad_stats(kernel, colours.family_rgb(base), self.mean_rgb)

  def describe(self):
    """The data facts written to padding.json (source, sizes, m)."""
    return {"source": self.name, "kind": self.kind, "n_train": int(len(self.train_y)),
            "n_test": int(len(self.test_y)), "num_classes": int(self.num_classes),
            "mean_rgb": [float(v) for v in self.mean_rgb]}


def digits_data(cfg, glyphs=None, labels=None):
  """The digits path's data (default: `load_digits`) and the experiment's own split: a fixed
  permutation (seed 0) whose first min(n_test, N/3) glyphs are the test set and the rest (the
  first n_train of them, if n_train > 0) the training set."""
  if glyphs is None:
    glyphs, labels = load_digits()
  perm = np.random.default_rng(0).permutation(glyphs.shape[0])
  n_te = min(cfg.n_test, glyphs.shape[0] // 3)
  te, tr = perm[:n_te], perm[n_te:]
  if cfg.n_train:
    tr = tr[:cfg.n_train]
  return PaddingData("digits", "digits", glyphs[tr], labels[tr], glyphs[te], labels[te],
                     int(labels.max()) + 1, cfg.size, cfg.pad)


def rgb_sources():
  """Registry data sets the RGB path accepts: those with "train" and "test" splits and no
  built-in transform (`cifar10_red` is already padded: use `cifar10`)."""
  return sorted(n for n, s in registry.REGISTRY.items()
                if {"train", "test"} <= set(s.splits) and s.transform is None)


def load_images(name, split, n, size, data_dir=None, seed=0):
  """Up to `n` images of registry data set `name` at `split`, as uint8 (N, size, size, 3) + labels.

  Reads through `featcon.data.registry.load` (TFDS `data_source` with download=False, image
  folders, the offline digits), one index at a time (batched reads fail on TFDS mocks); raises
  its DatasetNotPreparedError, which names the build command, when the set is not on disk.
  `n` = 0 reads every example; otherwise a fixed seeded subset. Images of another size are
  resized on the host (PIL bicubic) to size×size.

  Returns:
    (images, labels int32, num_classes).
  """
  ds = registry.load(name, split, data_dir=data_dir or None)
  src = ds.source
  total = len(src)
  if total == 0:
    raise ValueError(f"data set {name!r} split={split!r} is empty")
  idx = np.arange(total)
  if n and n < total:
    idx = np.sort(np.random.default_rng(seed).permutation(total)[:n])
  images = np.empty((len(idx), size, size, 3), np.uint8)
  labels = np.empty((len(idx),), np.int32)
  for j, i in enumerate(idx):
    ex = src[int(i)]
    img = np.asarray(ex["image"], np.uint8)
    if img.ndim == 2:
      img = img[..., None]
    if img.shape[-1] == 1:
      img = np.repeat(img, 3, axis=-1)
    img = img[..., :3]
    images[j] = preprocess.resize(np.ascontiguousarray(img), (size, size))
    labels[j] = ex["label"]
  if labels.min() < 0 or labels.max() >= ds.num_classes:
    raise ValueError(f"data set {name!r} split={split!r}: labels in [{labels.min()}, "
                     f"{labels.max()}] outside [0, {ds.num_classes})")
  return images, labels, ds.num_classes


def rgb_data(cfg):
  """The RGB path's data: registry set `cfg.source`, "train" (n_train) and "test" (n_test) splits."""
  data_dir = cfg.data_dir or None
  x_tr, y_tr, k = load_images(cfg.source, "train", cfg.n_train, cfg.size, data_dir)
  x_te, y_te, _ = load_images(cfg.source, "test", cfg.n_test, cfg.size, data_dir)
  return PaddingData("rgb", cfg.source, x_tr, y_tr, x_te, y_te, k, cfg.size, cfg.pad)
