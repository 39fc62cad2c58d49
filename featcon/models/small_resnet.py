"""Small ReLU ResNet with the featcon encoder contract, for CPU-scale experiments.

`SmallResNet.apply(variables, x, train=False)` returns `(output, intermediates)` with
intermediates "stem", "layer1".."layerS" (post-ReLU NHWC maps, each the output of a `Stage`
submodule, so Grad-CAM can differentiate through them) and "pre_logits" (global average pool).
No normalisation layers: the variables are only `params`.
"""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class Block(nn.Module):
  """Basic residual block: conv3×3 → ReLU → conv3×3, + shortcut, → ReLU."""
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    pad = ((1, 1), (1, 1))
    h = nn.relu(nn.Conv(self.features, (3, 3), (self.stride,) * 2, padding=pad, name="conv1")(x))
    h = nn.Conv(self.features, (3, 3), padding=pad, name="conv2")(h)
    if self.stride != 1 or x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), (self.stride,) * 2, name="shortcut")(x)
    return nn.relu(h + x)


class Stage(nn.Module):
  features: int
  blocks: int
  stride: int

  @nn.compact
  def __call__(self, x):
    for i in range(self.blocks):
      x = Block(self.features, self.stride if i == 0 else 1, name=f"block{i}")(x)
    return x


class Stem(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.relu(nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name="conv")(x))


class SmallResNet(nn.Module):
  """ResNet-ish CNN: stem conv, stages of basic blocks (stride 2 from the second), GAP, Dense.

  Attributes:
    widths: channels per stage; the stem has widths[0].
    blocks: residual blocks per stage.
    out_dim: size of the returned output (class logits, or an embedding).
  """
  widths: Sequence[int] = (16, 32, 64)
  blocks: int = 1
  out_dim: int = 10

  @nn.compact
  def __call__(self, x, train=False):
    del train  # no dropout or batch norm
    inter = {}
    x = Stem(self.widths[0], name="stem")(x)
    inter["stem"] = x
    for i, w in enumerate(self.widths):
      x = Stage(w, self.blocks, 1 if i == 0 else 2, name=f"layer{i + 1}")(x)
      inter[f"layer{i + 1}"] = x
    feats = jnp.mean(x, axis=(1, 2))
    inter["pre_logits"] = feats
    out = nn.Dense(self.out_dim, name="head")(feats)
    return out, inter


def first_conv_kernel(params):
  """The stem's (3, 3, in, out) kernel: the filters of Figure 6(c) and Figure 13."""
  return params["stem"]["conv"]["kernel"]
