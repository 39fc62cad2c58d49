"""In-memory image sets with labels and domain ids, as the analyses consume them.

Sources (config field `data.source`):
- "digits:<split>": the offline benchmark of the data registry (`featcon.data.digits`, the data
  `experiments.distill` trains on): the same `n_per_domain` digits of <split> (train, val, test)
  on grey-texture backgrounds (domain 0, ID) and on colour photographs (domain 1, OOD), at
  `size` px, CLIP-normalised exactly as the distillation loader feeds them. Image i of the OOD
  domain is image i of the ID domain on a colour photo (same digit, ±3 px position re-drawn), so
  the OOD row of Grad-CAM is already the controlled background shift (no `shifted_images`);
  `mask`: the 20×20 box the digit is drawn into (its ±3 px jitter not included);
- "padded_digits": scikit-learn digits on coloured borders (`padding.render`); domain 0 (ID) has
  jittered brick-red borders, domain 1 (OOD) green ones; the controlled shift re-draws the first
  ID images with the OOD border only (same digit, same pixels inside), Figure 6(b)'s setting;
- "padded_glyphs": the same with synthetic glyphs (no scikit-learn; for tests);
- "npz:<path>": arrays `images` (N, H, W, C) float in [0, 1], `labels`, `domains`, and optionally
  `shifted_images` + `shifted_index` (changed-background copies of images[shifted_index]) and
  `mask` (H, W) marking the object.
"""
import dataclasses
from typing import Optional, Tuple

import jax
import numpy as np

from featcon import io
from featcon.analysis import padding


@dataclasses.dataclass
class ImageSet:
  images: np.ndarray                    # (N, H, W, C) float32
  labels: np.ndarray                    # (N,) int
  domains: np.ndarray                   # (N,) int, 0 = ID
  num_classes: int
  domain_names: Tuple[str, ...] = ("ID", "OOD")
  shifted_images: Optional[np.ndarray] = None   # changed-background copies of ...
  shifted_index: Optional[np.ndarray] = None    # ... images[shifted_index]
  mask: Optional[np.ndarray] = None             # (H, W) object region

  def __post_init__(self):
    n = self.images.shape[0]
    if self.images.ndim != 4:
      raise ValueError(f"images.shape={self.images.shape}: need (N, H, W, C)")
    for name in ("labels", "domains"):
      v = getattr(self, name)
      if v.shape != (n,):
        raise ValueError(f"{name}.shape={v.shape}: need ({n},) to match images")
    if self.labels.min() < 0 or self.labels.max() >= self.num_classes:
      raise ValueError(f"labels range [{self.labels.min()}, {self.labels.max()}]: must lie in "
                       f"[0, num_classes={self.num_classes})")
    if self.domains.min() < 0:
      raise ValueError(f"domains min={self.domains.min()}: domain ids must be >= 0")

  def subset(self, domain):
    sel = self.domains == domain
    return self.images[sel], self.labels[sel]


def padded(glyphs, labels, n_per_domain=300, n_shift=8, size=16, pad=3, jitter=0.15,
           id_family="red", ood_family="green", seed=0):
  """ID/OOD image set from grey glyphs on coloured borders (see the module docstring)."""
  rng = np.random.default_rng(seed)
  n = min(2 * n_per_domain, glyphs.shape[0])
  idx = rng.permutation(glyphs.shape[0])[:n]
  half = n // 2
  g, y = glyphs[idx], labels[idx]
  key = jax.random.PRNGKey(seed)
  k_id, k_ood = jax.random.split(key)
  x_id = padding.render(g[:half], padding.sample_colours(k_id, half, id_family, jitter), size, pad)
  x_ood = padding.render(g[half:], padding.sample_colours(k_ood, n - half, ood_family, jitter),
                         size, pad)
  n_shift = min(n_shift, half)
  shifted = padding.render(g[:n_shift], padding.sample_colours(k_ood, n_shift, ood_family, jitter),
                           size, pad)
  return ImageSet(
      images=np.concatenate([np.asarray(x_id), np.asarray(x_ood)]).astype(np.float32),
      labels=y.astype(np.int32),
      domains=np.r_[np.zeros(half, np.int32), np.ones(n - half, np.int32)],
      num_classes=int(labels.max()) + 1,
      domain_names=(f"ID ({id_family} border)", f"OOD ({ood_family} border)"),
      shifted_images=np.asarray(shifted, np.float32),
      shifted_index=np.arange(n_shift),
      mask=padding.border_mask(size, pad))


def digits_benchmark(split="test", size=32, n_per_domain=300, copies=1):
  """ID/OOD image set of the offline digits benchmark (see the module docstring)."""
  from featcon.data import preprocess  # pylint: disable=g-import-not-at-top
  from featcon.data import registry  # pylint: disable=g-import-not-at-top
  doms = []
  for kind in ("grey", "colour"):
    src = registry.load(f"digits_{kind}", split, image_size=size, copies=copies).source
    n = min(n_per_domain, len(src))
    doms.append((preprocess.normalize(src.images[:n]), src.labels[:n].astype(np.int32)))
  (x_id, y_id), (x_ood, y_ood) = doms
  n = min(len(y_id), len(y_ood))
  assert np.array_equal(y_id[:n], y_ood[:n]), "grey/colour digits out of step"
  mask = np.zeros((size, size), np.float32)
  off, side = (size - 20) // 2, 20  # make_digits' default digit_size
  mask[off:off + side, off:off + side] = 1.0
  return ImageSet(
      images=np.concatenate([x_id, x_ood]).astype(np.float32),
      labels=np.concatenate([y_id, y_ood]),
      domains=np.r_[np.zeros(len(y_id), np.int32), np.ones(len(y_ood), np.int32)],
      num_classes=10,
      domain_names=("ID (grey backgrounds)", "OOD (colour photos)"),
      mask=mask if size >= 20 else None)


SOURCES = ("padded_digits", "padded_glyphs", "digits:<split>", "npz:<path>")


def load(cfg):
  """The `ImageSet` named by `cfg.source` (see the module docstring) with `cfg`'s sizes."""
  src = cfg.source
  if src in ("padded_digits", "padded_glyphs"):
    glyphs, labels = (padding.load_digits() if src == "padded_digits"
                      else padding.synthetic_glyphs(cfg.seed, 2 * cfg.n_per_domain))
    return padded(glyphs, labels, cfg.n_per_domain, cfg.n_shift, cfg.size, cfg.pad, cfg.jitter,
                  cfg.id_family, cfg.ood_family, cfg.seed)
  if src == "digits" or src.startswith("digits:"):
    return digits_benchmark(src.partition(":")[2] or "test", cfg.size, cfg.n_per_domain)
  if src.startswith("npz:"):
    z = io.load_npz(src[4:], fix="write it again (arrays images, labels, domains)",
                    keys=("images", "labels", "domains"))
    labels = z["labels"].astype(np.int32)
    return ImageSet(
        images=z["images"].astype(np.float32), labels=labels,
        domains=z["domains"].astype(np.int32), num_classes=int(labels.max()) + 1,
        domain_names=tuple(f"domain {i}" for i in range(int(z["domains"].max()) + 1)),
        shifted_images=z["shifted_images"] if "shifted_images" in z else None,
        shifted_index=z["shifted_index"] if "shifted_index" in z else None,
        mask=z["mask"] if "mask" in z else None)
  raise ValueError(f"data.source={src!r}: allowed {SOURCES}")
