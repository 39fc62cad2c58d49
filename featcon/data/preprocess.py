"""CLIP preprocessing, training augmentation and the paper's brick-red CIFAR-10 padding (host
side). CLIP's constants, eval transform and bicubic resize are featcon.clip.preprocess's."""
from __future__ import annotations

import numpy as np

from featcon.clip.preprocess import MEAN, STD, normalize, resize_bicubic
from featcon.clip.preprocess import preprocess as _clip_eval_transform

CLIP_MEAN = np.asarray(MEAN, np.float32)
CLIP_STD = np.asarray(STD, np.float32)
BRICK_RED = (150, 50, 50)
AUGMENTATIONS = ("none", "crop", "crop_flip")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """uint8 image resized to ``size`` = (h, w) with Pillow's bicubic filter (unchanged if already
  so): featcon.clip's resize, through Pillow when it is installed."""
  return resize_bicubic(image, size[0], size[1], backend="auto")


def clip_preprocess(image: np.ndarray, resolution: int) -> np.ndarray:
  """CLIP's eval transform (featcon.clip's, bit-identical to open_clip's): bicubic short-side
  resize, centre crop, /255, normalise (uint8 -> f32)."""
  return _clip_eval_transform(image, resolution, backend="auto")


def train_augment(image: np.ndarray, resolution: int, rng: np.random.Generator,
                  kind: str = "crop_flip", scale=(0.5, 1.0)) -> np.ndarray:
  """Training transform: random resized crop (area ``scale``, aspect 3/4..4/3), optional flip.

  ``kind="none"`` falls back to :func:`clip_preprocess`.
  """
  if kind not in AUGMENTATIONS:
    raise ValueError(f"augment={kind!r} is not allowed; allowed: {', '.join(AUGMENTATIONS)}")
  if kind == "none":
    return clip_preprocess(image, resolution)
  h, w = image.shape[:2]
  for _ in range(10):
    area = h * w * rng.uniform(*scale)
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch, cw = int(round(np.sqrt(area / ratio))), int(round(np.sqrt(area * ratio)))
    if 0 < ch <= h and 0 < cw <= w:
      y0, x0 = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
      break
  else:
    ch, cw, y0, x0 = h, w, 0, 0
  image = resize(image[y0:y0 + ch, x0:x0 + cw], (resolution, resolution))
  if kind == "crop_flip" and rng.random() < 0.5:
    image = image[:, ::-1]
  return normalize(image)


def pad_canvas(images, colours, pad: int, xp=np):
  """The border geometry of Appendix F.4: P_p(x, c), the image inside a border of ``pad`` px of
  one constant colour, P_p(x, c)[i, j] = x[i − p, j − p] inside and c on the border.

  Args:
    images: (..., H, W, C) array (one image or a batch).
    colours: (..., C) border colour, one per image (broadcast against the leading axes).
    pad: border width p >= 0.
    xp: the array module, ``numpy`` (host, uint8 or float) or ``jax.numpy`` (on device, traceable).
  Returns:
    (..., H + 2p, W + 2p, C) canvas of the images' dtype (exact copies of both inputs' values).
  """
  if pad < 0:
    raise ValueError(f"pad={pad}: must be >= 0")
  h, w = images.shape[-3:-1]
  inside = np.zeros((h + 2 * pad, w + 2 * pad, 1), bool)
  inside[pad:pad + h, pad:pad + w] = True
  widths = [(0, 0)] * (images.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
  colours = xp.asarray(colours, images.dtype)[..., None, None, :]
  return xp.where(inside, xp.pad(images, widths), colours)


def pad_brick_red(image: np.ndarray, pad: int = 8) -> np.ndarray:
  """Appendix F.4 on the host: `pad_canvas` with ``pad`` px of brick red (150, 50, 50), then
  resized back to the input size with PIL's bicubic filter on uint8 (`resize`).

  The registry's ``cifar10_red`` transform. The padded-image experiment
  (`featcon.analysis.padding.render_rgb`) builds the same canvas with the same colour constant,
  but on device inside its jitted training step (fresh colours every step), where PIL cannot run,
  and resizes it with jax's antialiased linear filter in float, which keeps border pixels exactly
  the colour (bicubic overshoots). So the colour and the geometry are shared and the resamplers
  differ; each caller keeps the numbers it has always produced.
  """
  return resize(pad_canvas(image[..., :3], np.array(BRICK_RED, np.uint8), pad), image.shape[:2])
