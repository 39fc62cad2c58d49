"""CLIP's image preprocessing in numpy, bit-identical to the reference transform.

The reference (OpenAI CLIP / open_clip ``image_transform``, eval mode) is torchvision's
``Resize(res, BICUBIC)`` on a PIL image -> ``CenterCrop(res)`` -> ``ToTensor`` -> ``Normalize``.
On PIL images ``Resize`` runs Pillow's separable resampler: a bicubic kernel (a = -0.5) widened by
the downscale factor (antialiasing), weights normalised and quantised to 22-bit fixed point,
horizontal pass then vertical pass, each rounded and clipped to uint8. :func:`resize_bicubic`
implements exactly that, so the numpy output matches the reference transform to float32 rounding.

These are featcon's one copy of CLIP's normalisation constants and of the bicubic resize; the data
layer (featcon.data.preprocess) uses them. ``backend="auto"`` runs Pillow's C resampler when
Pillow is installed (the same bytes, about 5-20x faster) and the numpy port otherwise, so this
module needs neither Pillow nor torch.
"""
from __future__ import annotations

import functools
import importlib.util

import numpy as np

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

_PRECISION_BITS = 32 - 8 - 2  # Pillow's Resample.c
BACKENDS = ("numpy", "pillow", "auto")


def _bicubic(x):
  a = -0.5
  x = np.abs(x)
  return np.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1,
                  np.where(x < 2.0, (((x - 5) * x + 8) * x - 4) * a, 0.0))


@functools.lru_cache(maxsize=512)
def _coeffs(in_size, out_size):
  """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc``: (out, ksize) int weights, xmin."""
  scale = in_size / out_size
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  ksize = int(np.ceil(support)) * 2 + 1
  w = np.zeros((out_size, ksize))
  xmins = np.zeros(out_size, np.int64)
  for xx in range(out_size):
    center = (xx + 0.5) * scale
    xmin = max(int(center - support + 0.5), 0)
    xmax = min(int(center + support + 0.5), in_size) - xmin
    k = _bicubic((np.arange(xmax) + xmin - center + 0.5) / filterscale)
    ww = k.sum()
    if ww != 0.0:
      k = k / ww
    w[xx, :xmax] = k
    xmins[xx] = xmin
  scaled = w * (1 << _PRECISION_BITS)
  iw = np.where(scaled < 0, np.trunc(-0.5 + scaled), np.trunc(0.5 + scaled)).astype(np.int64)
  iw.flags.writeable = xmins.flags.writeable = False  # cached: shared between calls
  return iw, xmins


def _resample_axis(img, out_size, axis):
  """One Pillow 8-bit resampling pass along ``axis`` of a uint8 (H, W, C) image."""
  in_size = img.shape[axis]
  iw, xmins = _coeffs(in_size, out_size)
  ksize = iw.shape[1]
  src = np.moveaxis(img, axis, 0).astype(np.int64)  # (in, other, C)
  idx = np.minimum(xmins[:, None] + np.arange(ksize)[None], in_size - 1)  # weights are 0 past xmax
  acc = np.full((out_size,) + src.shape[1:], 1 << (_PRECISION_BITS - 1), np.int64)
  for j in range(ksize):
    acc += src[idx[:, j]] * iw[:, j].reshape((-1,) + (1,) * (src.ndim - 1))
  out = np.clip(acc >> _PRECISION_BITS, 0, 255).astype(np.uint8)
  return np.moveaxis(out, 0, axis)


def _resize_pillow(img, height, width):
  from PIL import Image  # pylint: disable=g-import-not-at-top  (optional dependency)
  return np.asarray(Image.fromarray(img).resize((width, height), Image.BICUBIC))


def _backend(backend: str) -> str:
  if backend not in BACKENDS:
    raise ValueError(f"backend={backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
  if backend == "auto":
    return "pillow" if importlib.util.find_spec("PIL") is not None else "numpy"
  return backend


def resize_bicubic(image: np.ndarray, height: int, width: int,
                   backend: str = "numpy") -> np.ndarray:
  """Pillow-exact ``Image.resize((width, height), BICUBIC)`` of a uint8 (H, W, C) or (H, W) array.

  Horizontal pass first, then vertical, each skipped when that size is unchanged (as Pillow does).
  ``backend``: "numpy" (the port above), "pillow" (Pillow itself, same output), or "auto"
  (Pillow if installed, else numpy).
  """
  backend = _backend(backend)
  img = np.asarray(image)
  if img.dtype != np.uint8:
    raise TypeError(f"resize_bicubic expects uint8, got {img.dtype}")
  if img.shape[:2] == (height, width):
    return img
  if backend == "pillow":
    return _resize_pillow(np.ascontiguousarray(img), height, width)
  squeeze = img.ndim == 2
  if squeeze:
    img = img[..., None]
  if img.shape[1] != width:
    img = _resample_axis(img, width, 1)
  if img.shape[0] != height:
    img = _resample_axis(img, height, 0)
  return img[..., 0] if squeeze else img


def normalize(image: np.ndarray) -> np.ndarray:
  """uint8 RGB -> float32 ``(x / 255 - MEAN) / STD`` (the last step of CLIP's transform)."""
  x = np.asarray(image).astype(np.float32) / np.float32(255.0)
  return (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)


def _to_uint8_rgb(image):
  if hasattr(image, "convert") and hasattr(image, "size"):  # PIL image
    image = np.asarray(image.convert("RGB"))
  img = np.asarray(image)
  if img.dtype != np.uint8:
    raise TypeError(f"preprocess expects a uint8 image (or PIL image), got {img.dtype}")
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
    raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
  if img.shape[-1] == 1:
    img = np.repeat(img, 3, axis=-1)
  return img[..., :3]


def preprocess(image, resolution: int = 224, backend: str = "numpy") -> np.ndarray:
  """CLIP's eval transform of one image: float32 (resolution, resolution, 3), normalised.

  Bicubic resize of the short side to ``resolution`` (long side ``int(res * long / short)``, as
  torchvision computes it), centre crop (offsets ``round((size - res) / 2)``), scale to [0, 1],
  normalise with CLIP's ``MEAN`` / ``STD``. ``image``: uint8 (H, W, 3) / (H, W) array or PIL
  image (converted to RGB; an alpha channel is dropped as ``convert("RGB")`` does). ``backend``:
  of the resize (:func:`resize_bicubic`; all give the same output).
  """
  backend = _backend(backend)
  img = _to_uint8_rgb(image)
  h, w = img.shape[:2]
  short, long = (w, h) if w <= h else (h, w)
  new_short, new_long = resolution, int(resolution * long / short)
  new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
  if (new_h, new_w) != (h, w):
    img = resize_bicubic(img, new_h, new_w, backend)
  h, w = img.shape[:2]
  if h < resolution or w < resolution:  # cannot happen after the short-side resize
    raise ValueError("image smaller than the crop")
  top = int(round((h - resolution) / 2.0))
  left = int(round((w - resolution) / 2.0))
  return normalize(img[top:top + resolution, left:left + resolution])
