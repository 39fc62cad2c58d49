"""Flax image towers of CLIP (Radford et al., 2021): ModifiedResNet and VisionTransformer.

Submodules are named after the PyTorch ``state_dict`` keys of OpenAI's CLIP / open_clip (a numbered
child ``layer1.0`` becomes ``layer1_0``), so that :mod:`featcon.clip.convert` is a mechanical,
numpy-only mapping. Inputs are float32 NHWC images, already preprocessed
(:func:`featcon.clip.preprocess`). Every tower returns ``(embedding, intermediates)`` where
``intermediates`` is a flat ``dict`` name -> array (names are listed in ``docs/clip.md``).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from featcon.layers import BatchNorm, Conv, Dense, Dtype, LayerNorm, avg_pool
from featcon.layers import normal as _normal



def _split_heads(x, heads):
  """(B, L, D) -> (B, heads, L, D // heads): the head-major layout of :func:`_head_attention`."""
  b, l, d = x.shape
  return x.reshape(b, l, heads, d // heads).transpose(0, 2, 1, 3)


def _merge_heads(x):
  """(B, heads, L, hd) -> (B, L, heads * hd)."""
  b, h, l, hd = x.shape
  return x.transpose(0, 2, 1, 3).reshape(b, l, h * hd)


def _head_attention(q, k, v):
  """Scaled dot-product attention ``softmax(q k^T / sqrt(hd)) v`` (Vaswani et al., 2017) per
  head, head-major: q (B, H, Lq, hd), k/v (B, H, L, hd) -> (B, H, Lq, hd).

  The head-major layout makes both products plain batched matmuls; on XLA:CPU this is faster
  than the same products as einsums over the (B, L, H, hd) layout (docs/performance.md).
  """
  q = q * (q.shape[-1] ** -0.5)
  w = jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2), axis=-1)
  return w @ v


def _attention(q, k, v, heads):
  """Multi-head scaled dot-product attention. q: (B, Lq, D), k/v: (B, L, D) -> (B, Lq, D)."""
  return _merge_heads(_head_attention(*(_split_heads(a, heads) for a in (q, k, v))))


# ----------------------------------------------------------------------------------------------
# ModifiedResNet
# ----------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
  """CLIP Bottleneck: 1x1 -> 3x3 -> AvgPool(stride) -> 1x1 (x4), anti-aliased shortcut."""
  planes: int
  stride: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    out_c = self.planes * 4
    d = self.dtype
    out = nn.relu(BatchNorm(dtype=d, name="bn1")(Conv(self.planes, 1, dtype=d, name="conv1")(x), train))
    out = nn.relu(BatchNorm(dtype=d, name="bn2")(
        Conv(self.planes, 3, padding=1, dtype=d, name="conv2")(out), train))
    out = avg_pool(out, self.stride)
    out = BatchNorm(dtype=d, name="bn3")(Conv(out_c, 1, dtype=d, name="conv3")(out), train)
    if self.stride > 1 or x.shape[-1] != out_c:
      identity = avg_pool(x, self.stride)
      identity = Conv(out_c, 1, dtype=d, name="downsample_0")(identity)
      identity = BatchNorm(dtype=d, name="downsample_1")(identity, train)
    else:
      identity = x
    return nn.relu(out + identity)


class AttentionPool2d(nn.Module):
  """QKV attention pooling: the mean token (plus positional embedding) attends to all tokens."""
  spacial_dim: int
  heads: int
  output_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    d = self.dtype
    x = x.reshape(b, h * w, c)  # row-major grid, as torch's flatten of NCHW
    x = jnp.concatenate([jnp.mean(x, axis=1, keepdims=True), x], axis=1)
    pos = self.param("positional_embedding", _normal(c ** -0.5),
                     (self.spacial_dim ** 2 + 1, c), d)
    x = x + pos.astype(x.dtype)[None]
    std = c ** -0.5
    q = Dense(c, dtype=d, kernel_init=_normal(std), name="q_proj")(x[:, :1])
    k = Dense(c, dtype=d, kernel_init=_normal(std), name="k_proj")(x)
    v = Dense(c, dtype=d, kernel_init=_normal(std), name="v_proj")(x)
    o = _attention(q, k, v, self.heads)
    o = Dense(self.output_dim, dtype=d, kernel_init=_normal(std), name="c_proj")(o)
    return o[:, 0]


class ModifiedResNet(nn.Module):
  """CLIP's ModifiedResNet image tower (Radford et al., 2021, Sec. 2.4).

  3-conv stem + AvgPool(2), four Bottleneck stages (planes w, 2w, 4w, 8w; stride on block 0 done
  by average pooling), QKV attention pooling to ``output_dim``.

  ``__call__(x, train=False)`` with ``x`` float NHWC (B, res, res, 3) returns
  ``(embedding (B, output_dim), intermediates)``; intermediates: ``stem`` (after the stem
  AvgPool), ``layer1``..``layer4`` (post-ReLU stage outputs, NHWC), ``attnpool`` (= embedding).
  """
  layers: Sequence[int] = (3, 4, 6, 3)
  width: int = 64
  heads: int = 32
  output_dim: int = 1024
  image_size: int = 224
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    d = self.dtype
    w = self.width
    x = x.astype(d)
    inter = {}
    x = nn.relu(BatchNorm(dtype=d, name="bn1")(
        Conv(w // 2, 3, stride=2, padding=1, dtype=d, name="conv1")(x), train))
    x = nn.relu(BatchNorm(dtype=d, name="bn2")(
        Conv(w // 2, 3, padding=1, dtype=d, name="conv2")(x), train))
    x = nn.relu(BatchNorm(dtype=d, name="bn3")(
        Conv(w, 3, padding=1, dtype=d, name="conv3")(x), train))
    x = avg_pool(x, 2)
    inter["stem"] = x
    for i, n in enumerate(self.layers):
      planes = w * 2 ** i
      for j in range(n):
        stride = (1 if i == 0 else 2) if j == 0 else 1
        x = Bottleneck(planes, stride, dtype=d, name=f"layer{i + 1}_{j}")(x, train)
      inter[f"layer{i + 1}"] = x
    emb = AttentionPool2d(self.image_size // 32, self.heads, self.output_dim, dtype=d,
                          name="attnpool")(x)
    inter["attnpool"] = emb
    return emb, inter


# ----------------------------------------------------------------------------------------------
# VisionTransformer
# ----------------------------------------------------------------------------------------------


class MultiheadAttention(nn.Module):
  """torch ``nn.MultiheadAttention`` self-attention: fused ``in_proj`` (q|k|v) and ``out_proj``."""
  heads: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    dm = x.shape[-1]
    d = self.dtype
    zeros = nn.initializers.zeros  # torch MultiheadAttention: xavier in_proj, zero biases
    qkv = Dense(3 * dm, dtype=d, kernel_init=nn.initializers.xavier_uniform(), bias_init=zeros,
                name="in_proj")(x)
    b, l, _ = qkv.shape
    # (B, L, [q|k|v], heads, hd) -> ([q|k|v], B, heads, L, hd): one transpose for all three.
    q, k, v = qkv.reshape(b, l, 3, self.heads, dm // self.heads).transpose(2, 0, 3, 1, 4)
    o = _merge_heads(_head_attention(q, k, v))
    return Dense(dm, dtype=d, bias_init=zeros, name="out_proj")(o)


class ResidualAttentionBlock(nn.Module):
  """Pre-LN transformer block: ``x + attn(ln_1 x)``, then ``x + mlp(ln_2 x)`` (QuickGELU MLP)."""
  heads: int
  mlp_ratio: float = 4.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    dm = x.shape[-1]
    d = self.dtype
    x = x + MultiheadAttention(self.heads, dtype=d, name="attn")(LayerNorm(dtype=d, name="ln_1")(x))
    h = Dense(int(dm * self.mlp_ratio), dtype=d, name="mlp_c_fc")(LayerNorm(dtype=d, name="ln_2")(x))
    act = h * jax.nn.sigmoid(1.702 * h)  # QuickGELU
    x = x + Dense(dm, dtype=d, name="mlp_c_proj")(act)
    return x, act


class VisionTransformer(nn.Module):
  """CLIP's ViT image tower (Radford et al., 2021; Dosovitskiy et al., 2021).

  ``patch``x``patch`` stride-``patch`` conv (no bias) -> prepend class token -> + positional
  embedding -> ``ln_pre`` -> ``layers`` pre-LN blocks -> ``ln_post`` on the class token ->
  ``@ proj``. ``__call__(x, train=False)`` returns ``(embedding, intermediates)`` with
  intermediates ``stem`` (patch embeddings, (B, grid², width)), ``block{i}`` (token outputs),
  ``block{i}_mlp_act`` (QuickGELU output), ``pre_pool`` (tokens fed to ``ln_post``),
  ``embedding``. ``train`` is accepted for interface parity and has no effect (no BN, no dropout).
  """
  patch_size: int = 16
  width: int = 768
  layers: int = 12
  heads: int = 12
  output_dim: int = 512
  image_size: int = 224
  mlp_ratio: float = 4.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    d = self.dtype
    x = x.astype(d)
    b = x.shape[0]
    p = self.patch_size
    x = Conv(self.width, p, stride=p, dtype=d, name="conv1")(x)
    x = x.reshape(b, -1, self.width)
    inter = {"stem": x}
    scale = self.width ** -0.5
    cls = self.param("class_embedding", _normal(scale), (self.width,), d)
    grid = self.image_size // p
    pos = self.param("positional_embedding", _normal(scale), (grid * grid + 1, self.width), d)
    x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (b, 1, self.width)), x], axis=1)
    x = x + pos.astype(x.dtype)[None]
    x = LayerNorm(dtype=d, name="ln_pre")(x)
    for i in range(self.layers):
      x, act = ResidualAttentionBlock(self.heads, self.mlp_ratio, dtype=d,
                                      name=f"transformer_resblocks_{i}")(x)
      inter[f"block{i}"] = x
      inter[f"block{i}_mlp_act"] = act
    inter["pre_pool"] = x
    pooled = LayerNorm(dtype=d, name="ln_post")(x[:, 0])
    proj = self.param("proj", _normal(scale), (self.width, self.output_dim), d)
    emb = jnp.dot(pooled, proj.astype(x.dtype))
    inter["embedding"] = emb
    return emb, inter


# ----------------------------------------------------------------------------------------------
# Configs and constructors
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
  """Hyperparameters of a ModifiedResNet tower (heads default to 32·width/64, as in CLIP)."""
  layers: tuple = (3, 4, 6, 3)
  width: int = 64
  output_dim: int = 1024
  image_size: int = 224
  heads: int | None = None

  kind = "resnet"


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Hyperparameters of a VisionTransformer tower (heads default to width/64, as in CLIP)."""
  patch_size: int = 16
  width: int = 768
  layers: int = 12
  output_dim: int = 512
  image_size: int = 224
  heads: int | None = None
  mlp_ratio: float = 4.0

  kind = "vit"


CONFIGS = {
    "RN50": ResNetConfig((3, 4, 6, 3), 64, 1024, 224),
    "RN101": ResNetConfig((3, 4, 23, 3), 64, 512, 224),
    "RN50x4": ResNetConfig((4, 6, 10, 6), 80, 640, 288),
    "RN50x16": ResNetConfig((6, 8, 18, 8), 96, 768, 384),
    "RN50x64": ResNetConfig((3, 15, 36, 10), 128, 1024, 448),
    "ViT-B/32": ViTConfig(32, 768, 12, 512, 224),
    "ViT-B/16": ViTConfig(16, 768, 12, 512, 224),
    "ViT-L/14": ViTConfig(14, 1024, 24, 768, 224),
    "ViT-L/14@336": ViTConfig(14, 1024, 24, 768, 336),
    "tiny-rn": ResNetConfig((1, 1, 1, 1), 16, 32, 32),
    "tiny-vit": ViTConfig(4, 32, 2, 32, 32, heads=2),
}


def create_resnet(layers=(3, 4, 6, 3), width=64, output_dim=1024, image_size=224, heads=None,
                  dtype=jnp.float32) -> ModifiedResNet:
  """ModifiedResNet from explicit hyperparameters; ``heads`` defaults to ``width * 32 // 64``."""
  heads = heads or width * 32 // 64
  if image_size % 32:
    raise ValueError(f"ModifiedResNet needs image_size divisible by 32, got {image_size}")
  return ModifiedResNet(tuple(int(n) for n in layers), int(width), int(heads), int(output_dim),
                        int(image_size), dtype)


def create_vit(patch_size=16, width=768, layers=12, output_dim=512, image_size=224, heads=None,
               mlp_ratio=4.0, dtype=jnp.float32) -> VisionTransformer:
  """VisionTransformer from explicit hyperparameters; ``heads`` defaults to ``max(1, width // 64)``."""
  heads = heads or max(1, width // 64)
  if width % heads:
    raise ValueError(f"width {width} not divisible by heads {heads}")
  if image_size % patch_size:
    raise ValueError(f"image_size {image_size} not divisible by patch_size {patch_size}")
  return VisionTransformer(int(patch_size), int(width), int(layers), int(heads), int(output_dim),
                           int(image_size), float(mlp_ratio), dtype)


def create_from_config(config, dtype=jnp.float32) -> nn.Module:
  """Build the Flax tower described by a :class:`ResNetConfig` or :class:`ViTConfig`."""
  kw = dataclasses.asdict(config)
  if isinstance(config, ResNetConfig):
    return create_resnet(dtype=dtype, **kw)
  if isinstance(config, ViTConfig):
    return create_vit(dtype=dtype, **kw)
  raise TypeError(f"not a CLIP tower config: {config!r}")


def get_config(name: str, **overrides):
  """The config of a named tower (``CONFIGS`` keys), with dataclass fields overridden."""
  if name not in CONFIGS:
    raise KeyError(f"unknown CLIP tower {name!r}; known: {sorted(CONFIGS)}")
  cfg = CONFIGS[name]
  return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if k != "dtype"})


def create(name: str, **overrides) -> nn.Module:
  """Flax image tower of the named CLIP model (RN50 ... ViT-L/14@336, tiny-rn, tiny-vit).

  ``overrides`` replace config fields (``layers``, ``width``, ``output_dim``, ``image_size``,
  ``heads``, ``patch_size``, ``mlp_ratio``) or set ``dtype`` (e.g. ``jnp.float64``).
  """
  dtype = overrides.get("dtype", jnp.float32)
  return create_from_config(get_config(name, **overrides), dtype=dtype)


def config_of(module: nn.Module):
  """The :class:`ResNetConfig` / :class:`ViTConfig` of a constructed tower."""
  if isinstance(module, ModifiedResNet):
    return ResNetConfig(tuple(module.layers), module.width, module.output_dim, module.image_size,
                        module.heads)
  if isinstance(module, VisionTransformer):
    return ViTConfig(module.patch_size, module.width, module.layers, module.output_dim,
                     module.image_size, module.heads, module.mlp_ratio)
  raise TypeError(f"not a CLIP tower: {type(module)}")
