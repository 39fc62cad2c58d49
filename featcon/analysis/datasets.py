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
- "real:<ID set>:<split>": the real-image benchmark of the data registry (`featcon.data.real`,
  the data `experiments.real_experiment` distils and evaluates on), e.g.
  "real:fmnist_grass:test": the same `n_per_domain` items of <split> (a fixed seeded subset,
  `featcon.data.refs.subset`) on the ID set's background (domain 0) and on each OOD background
  of `ood_sets` (domains 1, 2, ...; default: every other background with that split, i.e.
  textures and photos), rendered at `size` px as the registry renders them (background seed 0)
  and CLIP-normalised by the distillation loader's own transform
  (`featcon.data.preprocess.clip_preprocess`); `mask` is per image (N, H, W): the square each
  object fills at its own position (`real.object_boxes`); `shifted_images` are the first
  `n_shift` ID items at their ID positions on the first OOD set's background crops
  (`real.make_real_moved`: same item, same pixels, same place, only the background changed);
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
  mask: Optional[np.ndarray] = None             # object region: (H, W), or (N, H, W) per image
  normalization: Optional[str] = None           # "clip": CLIP mean/std (None: not normalised)

  def __post_init__(self):
    n = self.images.shape[0]
    if self.images.ndim != 4:
      raise ValueError(f"images.shape={self.images.shape}: need (N, H, W, C)")
    hw = self.images.shape[1:3]
    if self.mask is not None and self.mask.shape not in (hw, (n, *hw)):
      raise ValueError(f"mask.shape={self.mask.shape}: need {hw} (one mask) or {(n, *hw)} "
                       "(one per image)")
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

  def mask_of(self, index):
    """The object mask(s) of images[index]: None, the shared (H, W) mask, or (len, H, W)."""
    if self.mask is None or self.mask.ndim == 2:
      return self.mask
    return self.mask[np.asarray(index)]


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
      mask=mask if size >= 20 else None, normalization="clip")


def real_benchmark(id_set="fmnist_grass", split="test", size=48, n_per_domain=300, n_shift=6,
                   ood_sets=()):
  """ID/OOD image set of the real-image benchmark (see the module docstring, "real:")."""
  from featcon.data import preprocess  # pylint: disable=g-import-not-at-top
  from featcon.data import real  # pylint: disable=g-import-not-at-top
  from featcon.data import refs  # pylint: disable=g-import-not-at-top
  from featcon.data import registry  # pylint: disable=g-import-not-at-top
  spec = _real_spec(id_set, "data.source", split)
  objects, id_bg = spec.real_objects, spec.real_background
  if not ood_sets:
    ood_sets = tuple(f"{objects}_{b}" for b in real.BACKGROUNDS
                     if b not in (id_bg, "all") and split in real.BACKGROUND_SPLITS[b])
  ood_specs = [_real_spec(o, "data.ood_sets", split) for o in ood_sets]
  for o, sp in zip(ood_sets, ood_specs):
    if sp.real_objects != objects or sp.real_background == id_bg:
      raise ValueError(f"data.ood_sets item {o!r}: must show the ID set's objects "
                       f"({objects!r}) on another background than {id_bg!r}")
  if not ood_specs:
    raise ValueError(f"data.source split={split!r}: no other background of {objects!r} has "
                     f"this split; allowed splits with OOD backgrounds: test")
  if n_per_domain < 1:
    raise ValueError(f"data.n_per_domain={n_per_domain}: must be >= 1")
  base = registry.load(id_set, split, image_size=size)
  sub = refs.subset(base, n_per_domain, "data.n_per_domain")  # the items of every domain
  idx = sub.source.indices if sub is not base else np.arange(len(base.source))
  xs, ys, masks, names = [], [], [], []
  for name, sp in [(id_set, spec)] + list(zip(ood_sets, ood_specs)):
    src = registry.load(name, split, image_size=size).source
    xs.append(np.stack([preprocess.clip_preprocess(src.images[i], size) for i in idx]))
    ys.append(src.labels[idx].astype(np.int32))
    boxes = real.object_boxes(objects, sp.real_background, split, image_size=size)[idx]
    masks.append(_box_masks(boxes, size))
    names.append(f"{'ID' if not names else 'OOD'} ({name})")
  if not all(np.array_equal(ys[0], y) for y in ys):
    raise AssertionError("real-image sets out of step: the same items must carry the same labels")
  n_shift = min(n_shift, len(idx))
  moved = real.make_real_moved(objects, ood_specs[0].real_background, split,
                               positions_from=id_bg, image_size=size)
  shifted = np.stack([preprocess.clip_preprocess(moved.images[i], size) for i in idx[:n_shift]])
  return ImageSet(
      images=np.concatenate(xs).astype(np.float32),
      labels=np.concatenate(ys),
      domains=np.concatenate([np.full(len(y), d, np.int32) for d, y in enumerate(ys)]),
      num_classes=spec.num_classes,
      domain_names=tuple(names),
      shifted_images=shifted.astype(np.float32) if n_shift else None,
      shifted_index=np.arange(n_shift) if n_shift else None,
      mask=np.concatenate(masks), normalization="clip")


def _real_spec(name, field, split):
  """The registry spec of real-image set `name`, checked to have `split`."""
  from featcon.data import registry  # pylint: disable=g-import-not-at-top
  spec = registry.get_spec(name)  # ValueError naming the allowed names
  if spec.kind != "real":
    real_names = sorted(k for k, v in registry.REGISTRY.items() if v.kind == "real")
    raise ValueError(f"{field}: data set {name!r} is not a real-image background set; "
                     f"allowed: {', '.join(real_names)}")
  if split not in spec.splits:
    raise ValueError(f"{field}: split={split!r} is not allowed for {name!r}; allowed: "
                     f"{', '.join(spec.splits)}")
  return spec


def _box_masks(boxes, size):
  """(N, size, size) float32 masks, 1 inside each (top, left, bottom, right) box."""
  r = np.arange(size)
  rows = (r[None] >= boxes[:, :1]) & (r[None] < boxes[:, 2:3])
  cols = (r[None] >= boxes[:, 1:2]) & (r[None] < boxes[:, 3:4])
  return (rows[:, :, None] & cols[:, None, :]).astype(np.float32)


SOURCES = ("padded_digits", "padded_glyphs", "digits:<split>", "real:<ID set>:<split>",
           "npz:<path>")


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
  if src.startswith("real:"):
    parts = src.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
      raise ValueError(f"data.source={src!r}: use 'real:<ID set>:<split>', e.g. "
                       "'real:fmnist_grass:test'")
    ood = tuple(t.strip() for t in cfg.get("ood_sets", "").split(",") if t.strip())
    return real_benchmark(parts[1], parts[2], cfg.size, cfg.n_per_domain, cfg.n_shift, ood)
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
