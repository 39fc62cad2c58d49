"""The one indirection to image encoders: ``make_encoder(name, **overrides)``.

Uses ``featcon.clip.create`` (the Flax CLIP port) when it is importable and knows ``name``;
otherwise falls back to stand-ins with exactly the same contract:

- ``module.init(rng, x)`` with ``x`` float32 NHWC;
- ``module.apply(variables, x, train=False) -> (embedding, intermediates)``;
- ``module.apply(variables, x, train=True, mutable=["batch_stats"]) -> ((emb, inter), updates)``
  (ResNets keep BatchNorm statistics; ViTs have none);
- ViT intermediates include ``"block0" .. "block{N-1}"``.

Stand-ins: ``tiny-rn`` (a CLIP ModifiedResNet in miniature: 3-conv stem, anti-aliased
bottlenecks, attention pooling; 32x32 input, output dim 32) and ``tiny-vit`` (patch 4, 32x32,
pre-LN blocks with QuickGELU, class-token projection; output dim 32). The theory's two-layer
network ``A sigma(W x)`` (Section 3.2) is always local: ``mlp-relu`` and ``mlp-identity``.
"""
from __future__ import annotations

import dataclasses

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

STANDIN_NAMES = ("tiny-rn", "tiny-vit")
THEORY_NAMES = ("mlp-relu", "mlp-identity")


def quick_gelu(x):
  return x * jax.nn.sigmoid(1.702 * x)


class _Bottleneck(nn.Module):
  planes: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                   name=name)
    out = nn.relu(bn("bn1")(nn.Conv(self.planes, (1, 1), use_bias=False, name="conv1")(x)))
    out = nn.Conv(self.planes, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, name="conv2")(out)
    out = nn.relu(bn("bn2")(out))
    if self.stride > 1:
      out = nn.avg_pool(out, (self.stride, self.stride), (self.stride, self.stride))
    out = bn("bn3")(nn.Conv(self.planes * 4, (1, 1), use_bias=False, name="conv3")(out))
    if self.stride > 1 or x.shape[-1] != self.planes * 4:
      if self.stride > 1:
        x = nn.avg_pool(x, (self.stride, self.stride), (self.stride, self.stride))
      x = bn("downsample_1")(nn.Conv(self.planes * 4, (1, 1), use_bias=False,
                                     name="downsample_0")(x))
    return nn.relu(out + x)


class _AttentionPool(nn.Module):
  heads: int
  output_dim: int

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    x = x.reshape(b, h * w, c)
    x = jnp.concatenate([x.mean(axis=1, keepdims=True), x], axis=1)
    pos = self.param("positional_embedding", nn.initializers.normal(c ** -0.5), (h * w + 1, c))
    x = x + pos
    out = nn.MultiHeadDotProductAttention(num_heads=self.heads, out_features=self.output_dim,
                                          name="attn")(x[:, :1], x)
    return out[:, 0]


class TinyModifiedResNet(nn.Module):
  """CLIP ModifiedResNet in miniature (stand-in for ``featcon.clip.create("tiny-rn")``)."""
  layers: Sequence[int] = (1, 1)
  width: int = 16
  heads: int = 2
  output_dim: int = 32

  @nn.compact
  def __call__(self, x, train: bool = False):
    inter = {}
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                   name=name)
    w = self.width
    x = nn.relu(bn("bn1")(nn.Conv(w // 2, (3, 3), (2, 2), padding=((1, 1), (1, 1)),
                                  use_bias=False, name="conv1")(x)))
    x = nn.relu(bn("bn2")(nn.Conv(w // 2, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                                  name="conv2")(x)))
    x = nn.relu(bn("bn3")(nn.Conv(w, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                                  name="conv3")(x)))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    inter["stem"] = x
    for i, n in enumerate(self.layers):
      for j in range(n):
        x = _Bottleneck(w * 2 ** i, stride=(2 if i > 0 and j == 0 else 1),
                        name=f"layer{i + 1}_{j}")(x, train)
      inter[f"layer{i + 1}"] = x
    emb = _AttentionPool(self.heads, self.output_dim, name="attnpool")(x)
    inter["embedding"] = emb
    return emb, inter


class _ResidualAttentionBlock(nn.Module):
  heads: int

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    ln = lambda name: nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name=name)
    x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads, name="attn")(ln("ln_1")(x))
    h = nn.Dense(4 * d, name="c_fc")(ln("ln_2")(x))
    return x + nn.Dense(d, name="c_proj")(quick_gelu(h))


class TinyVisionTransformer(nn.Module):
  """CLIP VisionTransformer in miniature (stand-in for ``featcon.clip.create("tiny-vit")``)."""
  patch: int = 4
  width: int = 32
  layers: int = 4
  heads: int = 2
  output_dim: int = 32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no BatchNorm, no dropout
    inter = {}
    x = nn.Conv(self.width, (self.patch, self.patch), (self.patch, self.patch), use_bias=False,
                name="conv1")(x)
    b, h, w, d = x.shape
    x = x.reshape(b, h * w, d)
    cls = self.param("class_embedding", nn.initializers.normal(d ** -0.5), (d,))
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, d)), x], axis=1)
    x = x + self.param("positional_embedding", nn.initializers.normal(d ** -0.5), (h * w + 1, d))
    x = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name="ln_pre")(x)
    for i in range(self.layers):
      x = _ResidualAttentionBlock(self.heads, name=f"resblocks_{i}")(x)
      inter[f"block{i}"] = x
    x = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name="ln_post")(x[:, 0])
    inter["pre_logits"] = x
    emb = x @ self.param("proj", nn.initializers.normal(d ** -0.5), (d, self.output_dim))
    inter["embedding"] = emb
    return emb, inter


class TwoLayerNet(nn.Module):
  """The theory's network ``f(x) = A sigma(W x)`` on flattened pixels (Section 3.2)."""
  width: int = 256
  output_dim: int = 32
  activation: str = "relu"

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    act = {"relu": nn.relu, "identity": lambda z: z}[self.activation]
    h = act(nn.Dense(self.width, name="hidden")(x.reshape(x.shape[0], -1)))
    emb = nn.Dense(self.output_dim, name="out")(h)
    return emb, {"hidden": h, "embedding": emb}


def _standin(name: str, **overrides: Any) -> nn.Module:
  if name == "tiny-rn":
    return TinyModifiedResNet(**overrides)
  if name == "tiny-vit":
    return TinyVisionTransformer(**overrides)
  if name in THEORY_NAMES:
    return TwoLayerNet(activation=name.split("-")[1], **overrides)
  raise ValueError(
      f"encoder name={name!r} is not available: the CLIP port (featcon.clip) is not installed "
      f"or does not know it; stand-ins allowed: {', '.join(STANDIN_NAMES + THEORY_NAMES)}")


def make_encoder(name: str, **overrides: Any) -> nn.Module:
  """An image encoder honouring the CLIP-port contract (see module docstring)."""
  if name in THEORY_NAMES:
    return _standin(name, **overrides)
  try:
    from featcon import clip  # pylint: disable=g-import-not-at-top
  except ImportError:
    return _standin(name, **overrides)
  return clip.create(name, **overrides)


def encoder_backend(name: str) -> str:
  """"featcon.clip" or "stand-in": which implementation ``make_encoder(name)`` uses."""
  if name in THEORY_NAMES:
    return "stand-in"
  try:
    from featcon import clip  # pylint: disable=g-import-not-at-top,unused-import
    return "featcon.clip"
  except ImportError:
    return "stand-in"


def has_batch_stats(variables) -> bool:
  return "batch_stats" in variables and bool(jax.tree_util.tree_leaves(variables["batch_stats"]))


def load_pretrained(name: str, checkpoint: str) -> dict:
  """Released pre-trained weights (the paper's CLIP teachers) as Flax variables.

  Reads ``checkpoint`` (OpenAI TorchScript ``.pt``, ``torch.save`` state dict or
  ``.safetensors``) with :func:`featcon.clip.load`, which infers the architecture from the
  weights; raises ``ValueError`` if that architecture is not ``name``'s.
  """
  from featcon import clip  # pylint: disable=g-import-not-at-top
  encoder = clip.load(checkpoint)
  same = lambda c: dataclasses.replace(c, heads=None)  # heads are inferred (width / 64)
  if name in clip.CONFIGS and (type(clip.CONFIGS[name]) is not type(encoder.config)
                               or same(clip.CONFIGS[name]) != same(encoder.config)):
    raise ValueError(f"teacher checkpoint={checkpoint!r} holds {encoder.config}, not the "
                     f"architecture of name={name!r} ({clip.CONFIGS[name]})")
  return encoder.variables
