"""Common image corruptions at severities 1-5 (ImageNet-C; Hendrycks & Dietterich, ICLR 2019).

Each corruption follows the published definition (the paper's Appendix and its reference code,
``imagecorruptions==1.1.2``) with the same five severity constants ``c[s-1]``; images are
float in [0, 1] unless said otherwise, and ``clip`` is to [0, 1]:

=================  ==========================================  ===============================
name               definition                                  constants c (severity 1..5)
=================  ==========================================  ===============================
gaussian_noise     clip(x + N(0, c^2))                         .08 .12 .18 .26 .38
shot_noise         clip(Poisson(c x) / c)                      60 25 12 5 3
impulse_noise      a fraction c of the values set to 0 or 1    .03 .06 .09 .17 .27
                   (salt and pepper, half each)
speckle_noise      clip(x + x N(0, c^2))                       .15 .2 .35 .45 .6
gaussian_blur      Gaussian filter, sigma = c (edge: nearest)  1 2 3 4 6
defocus_blur       disk of radius r, anti-aliased by a 3-tap   (3,.1) (4,.5) (6,.5) (8,.5)
                   Gaussian of sigma a (edge: mirror)          (10,.5)
contrast           clip((x - m) c + m), m the per-channel      .4 .3 .2 .1 .05
                   image mean
brightness         HSV value v -> clip(v + c)                  .1 .2 .3 .4 .5
fog                clip((x + c1 P) max(x) / (max(x) + c1)),    (1.5,2) (2,2) (2.5,1.7)
                   P a plasma fractal of decay c2              (2.5,1.5) (3,1.4)
frost              clip(c1 x + c2 F), F a crop of one of the   (1,.4) (.8,.6) (.7,.7)
                   five first frost photographs (0..255)       (.65,.7) (.6,.75)
pixelate           box-downsample by c, nearest-upsample       .6 .5 .4 .3 .25
jpeg_compression   JPEG at quality c                           25 18 15 10 7
=================  ==========================================  ===============================

**Resolution.** ImageNet-C is defined on 224 x 224 images. Here images are smaller (the real
benchmark renders 64 x 64), so every *spatial* constant is scaled by ``s = side / 224``:
the blur sigmas and disk radii (``gaussian_blur``, ``defocus_blur``, so e.g. a 64-px image at
severity 1 of defocus has a sub-pixel disk and is barely blurred); the plasma fractal is drawn
on the reference 256 x 256 grid (or that grid subsampled by a power of two without its finest
levels, while it still has at least ``side`` pixels: 128 for 64-px images), cropped by
224 / 256 and resized to the image, so the fog keeps its structure relative to the image; the frost photographs are resized by
``1.1 s`` (the reference code's 1.1 up-scaling of a 224 crop) and cropped. Noise, contrast,
brightness, pixelate (a relative factor) and JPEG quality need no adaptation. Outputs are
rounded to uint8 (the reference code truncates).

The frost photographs ship inside the ``imagecorruptions`` package (data files only; its code is
not imported: it needs OpenCV and APIs removed from current NumPy/scikit-image). Install with
``pip install imagecorruptions==1.1.2``.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import os

import numpy as np

from featcon.data.sources import DatasetNotPreparedError

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIDE = 224  # ImageNet-C's image side; spatial constants are scaled by side / 224

CONSTANTS = {
    "gaussian_noise": (.08, .12, .18, .26, .38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (.03, .06, .09, .17, .27),
    "speckle_noise": (.15, .2, .35, .45, .6),
    "gaussian_blur": (1, 2, 3, 4, 6),
    "defocus_blur": ((3, .1), (4, .5), (6, .5), (8, .5), (10, .5)),
    "contrast": (.4, .3, .2, .1, .05),
    "brightness": (.1, .2, .3, .4, .5),
    "fog": ((1.5, 2.), (2., 2.), (2.5, 1.7), (2.5, 1.5), (3., 1.4)),
    "frost": ((1., .4), (.8, .6), (.7, .7), (.65, .7), (.6, .75)),
    "pixelate": (.6, .5, .4, .3, .25),
    "jpeg_compression": (25, 18, 15, 10, 7),
}
CORRUPTIONS = tuple(CONSTANTS)
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
FROST_INSTALL = "pip install imagecorruptions==1.1.2"


def _check(name: str, severity: int) -> None:
  if name not in CONSTANTS:
    raise ValueError(f"corruption name={name!r} is not allowed; allowed: {', '.join(CORRUPTIONS)}")
  if severity not in SEVERITIES:
    raise ValueError(f"corruption severity={severity!r} is not allowed; allowed: 1..5")


def gaussian_noise(x, c, rng, scale):
  del scale
  return np.clip(x + c * rng.standard_normal(x.shape, dtype=x.dtype), 0, 1)


def shot_noise(x, c, rng, scale):
  del scale
  return np.clip(rng.poisson(x * c) / float(c), 0, 1)


def impulse_noise(x, c, rng, scale):
  del scale
  hit = rng.random(x.shape, dtype=np.float32) < c
  salt = rng.random(x.shape, dtype=np.float32) < 0.5
  return np.where(hit, salt.astype(x.dtype), x)


def speckle_noise(x, c, rng, scale):
  del scale
  return np.clip(x + x * c * rng.standard_normal(x.shape, dtype=x.dtype), 0, 1)


def gaussian_blur(x, c, rng, scale):
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  del rng
  sigma = c * scale
  return np.clip(ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest"), 0, 1)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
  """ImageNet-C's anti-aliased disk: ``1[X^2 + Y^2 <= r^2]`` normalised, then a 3-tap Gaussian."""
  k = int(np.ceil(radius)) + 1
  grid = np.arange(-k, k + 1)
  xx, yy = np.meshgrid(grid, grid)
  disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float64)
  disk /= disk.sum()
  taps = np.exp(-np.arange(-1, 2) ** 2 / (2 * alias_blur ** 2))
  taps /= taps.sum()
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  disk = ndimage.correlate1d(disk, taps, axis=0, mode="mirror")
  return ndimage.correlate1d(disk, taps, axis=1, mode="mirror")


def defocus_blur(x, c, rng, scale):
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  del rng
  kernel = disk_kernel(c[0] * scale, c[1])
  return np.clip(ndimage.correlate(x, kernel[None, :, :, None], mode="mirror"), 0, 1)


def contrast(x, c, rng, scale):
  del rng, scale
  means = x.mean(axis=(1, 2), keepdims=True)
  return np.clip((x - means) * c + means, 0, 1)


def brightness(x, c, rng, scale):
  """HSV value ``v = max(r, g, b)`` raised to ``v' = min(v + c, 1)`` at fixed hue and
  saturation: ``rgb' = rgb v' / v`` (``v' `` grey where ``v = 0``), the HSV round trip of the
  reference code in closed form."""
  del rng, scale
  v = x.max(axis=-1, keepdims=True)
  v_new = np.minimum(v + c, 1.0)
  return np.where(v > 0, x * (v_new / np.where(v > 0, v, 1.0)), v_new)


def plasma_fractal(n: int, rng: np.random.Generator, mapsize: int = 256,
                   wibbledecay: float = 3.0) -> np.ndarray:
  """``n`` diamond-square height maps ``(n, mapsize, mapsize)`` in [0, 1] (ImageNet-C's fog)."""
  if mapsize & (mapsize - 1):
    raise ValueError(f"plasma mapsize={mapsize} is not allowed; allowed: a power of two")
  m = np.zeros((n, mapsize, mapsize))  # float64, as the reference
  step, wibble = mapsize, 100.0

  def wibbled_mean(a):
    return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

  while step >= 2:
    h = step // 2
    corner = m[:, 0::step, 0::step]
    sq = corner + np.roll(corner, -1, axis=1)
    sq = sq + np.roll(sq, -1, axis=2)
    m[:, h::step, h::step] = wibbled_mean(sq)
    dr = m[:, h::step, h::step]
    ul = m[:, 0::step, 0::step]
    lt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2)
    m[:, 0::step, h::step] = wibbled_mean(lt)
    tt = dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1)
    m[:, h::step, 0::step] = wibbled_mean(tt)
    step //= 2
    wibble /= wibbledecay
  m -= m.min(axis=(1, 2), keepdims=True)
  return m / m.max(axis=(1, 2), keepdims=True)


def _resize_maps(maps: np.ndarray, side: int) -> np.ndarray:
  """Square maps resized by an antialiased triangle filter (PIL's BILINEAR when shrinking)."""
  n_in = maps.shape[1]
  if n_in == side:
    return maps
  ratio = n_in / side
  support = max(ratio, 1.0)
  centres = (np.arange(side) + 0.5) * ratio
  w = np.maximum(0.0, 1.0 - np.abs((np.arange(n_in)[None] + 0.5 - centres[:, None]) / support))
  w /= w.sum(axis=1, keepdims=True)
  return np.einsum("ih,nhw,jw->nij", w, maps, w, optimize=True)


def fog_mapsize(side: int) -> int:
  """The plasma grid for an image of ``side``: the reference's 256 grid (cropped to 224) halved
  while its 224/256 crop still covers ``side`` pixels. A half-size grid is the full one
  subsampled by two without its finest level, so the fog's structure is kept."""
  m = 256
  while m > 2 and (m // 2) * REFERENCE_SIDE // 256 >= side:
    m //= 2
  return m


def fog(x, c, rng, scale):
  del scale
  n, side = x.shape[0], x.shape[1]
  mapsize = fog_mapsize(side)
  crop = mapsize * REFERENCE_SIDE // 256
  maps = []
  for i in range(0, n, 256):
    k = min(256, n - i)
    p = plasma_fractal(k, rng, mapsize, c[1])[:, :crop, :crop]
    maps.append(_resize_maps(p, side))
  plasma = np.concatenate(maps)[..., None].astype(x.dtype)
  max_val = x.max(axis=(1, 2, 3), keepdims=True)
  return np.clip((x + c[0] * plasma) * max_val / (max_val + c[0]), 0, 1)


def package_data_dir(package: str, *parts: str) -> str | None:
  """A folder inside an installed package, found without importing the package's code."""
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    return None
  return os.path.join(list(spec.submodule_search_locations)[0], *parts)


@functools.lru_cache(maxsize=None)
def frost_images() -> tuple[np.ndarray, ...]:
  """The five frost photographs ImageNet-C draws from (uint8 RGB), from ``imagecorruptions``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = package_data_dir("imagecorruptions", "frost")
  paths = [os.path.join(folder, f) for f in FROST_FILES] if folder else []
  if not paths or not all(os.path.isfile(p) for p in paths):
    raise DatasetNotPreparedError(
        f"the frost photographs {', '.join(FROST_FILES)} are not installed (they ship with the "
        f"imagecorruptions package): `{FROST_INSTALL}`")
  out = []
  for p in paths:
    with Image.open(p) as im:
      out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
  return tuple(out)


@functools.lru_cache(maxsize=None)
def _frost_scaled(side: int) -> tuple[np.ndarray, ...]:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  f = 1.1 * side / REFERENCE_SIDE
  out = []
  for img in frost_images():
    h, w = img.shape[:2]
    size = (max(side + 1, int(np.ceil(w * f))), max(side + 1, int(np.ceil(h * f))))
    out.append(np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC), dtype=np.float32))
  return tuple(out)


def frost(x, c, rng, scale):
  del scale
  side = x.shape[1]
  pool = _frost_scaled(side)
  out = np.empty_like(x)
  for i in range(len(x)):
    f = pool[rng.integers(len(pool))]
    y0 = rng.integers(f.shape[0] - side)
    x0 = rng.integers(f.shape[1] - side)
    crop = f[y0:y0 + side, x0:x0 + side] / 255.0
    out[i] = np.clip(c[0] * x[i] + c[1] * crop, 0, 1)
  return out


def _per_image_pil(x, fn):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = np.empty_like(x)
  for i in range(len(x)):
    im = Image.fromarray(np.round(x[i] * 255).astype(np.uint8))
    out[i] = np.asarray(fn(im), dtype=np.float32) / 255.0
  return out


def pixelate(x, c, rng, scale):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  del rng, scale
  h, w = x.shape[1:3]
  small = (max(1, int(w * c)), max(1, int(h * c)))
  return _per_image_pil(
      x, lambda im: im.resize(small, Image.BOX).resize((w, h), Image.NEAREST))


def jpeg_compression(x, c, rng, scale):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  del rng, scale

  def encode(im):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(c))
    buf.seek(0)
    with Image.open(buf) as out:
      return out.convert("RGB")
  return _per_image_pil(x, encode)


_FUNCTIONS = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise, "gaussian_blur": gaussian_blur, "defocus_blur": defocus_blur,
    "contrast": contrast, "brightness": brightness, "fog": fog, "frost": frost,
    "pixelate": pixelate, "jpeg_compression": jpeg_compression,
}


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
  """``images`` (uint8 ``(N, H, W, 3)``, square) under corruption ``name`` at ``severity``.

  Deterministic in ``(name, severity, seed)``, with the random draws shared across severities;
  see the module docstring for the definitions.
  """
  _check(name, severity)
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}")
  if images.shape[1] != images.shape[2]:
    raise ValueError(f"images must be square; got H x W = {images.shape[1]} x {images.shape[2]}")
  # One random stream per (name, seed), shared by the severities: the same noise draws, fog
  # maps and frost crops at every severity, so severities differ only by their constants.
  rng = np.random.default_rng(np.random.SeedSequence([2019, CORRUPTIONS.index(name), seed]))
  x = images.astype(np.float32) / np.float32(255.0)
  scale = images.shape[1] / REFERENCE_SIDE
  y = _FUNCTIONS[name](x, CONSTANTS[name][severity - 1], rng, scale)
  return np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)
