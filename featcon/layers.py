"""Layers with PyTorch semantics, shared by the CLIP towers (:mod:`featcon.clip.model`),
EfficientNet (:mod:`featcon.models.efficientnet`) and the BatchNorm recalibration
(:mod:`featcon.distill.batchnorm`): PyTorch's default init, bias-free convolutions with
symmetric explicit padding, ``nn.Linear``-named dense layers, two-pass LayerNorm and a
BatchNorm2d whose running variance uses the unbiased batch variance (Flax's uses the biased one).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

# PyTorch defaults. BatchNorm2d(eps=1e-5, momentum=0.1), LayerNorm(eps=1e-5).
BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch convention: new = (1 - m) * old + m * batch.
LN_EPS = 1e-5


def torch_linear_init(fan_in):
  """PyTorch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform a=√5)."""
  bound = 1.0 / np.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def normal(std):
  """Initialiser N(0, std^2)."""
  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.normal(key, shape, dtype)
  return init


class Conv(nn.Module):
  """Bias-free 2-D convolution (NHWC, HWIO kernel) with PyTorch's symmetric explicit padding."""
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1] * self.kernel * self.kernel
    k = self.param("kernel", torch_linear_init(fan_in),
                   (self.kernel, self.kernel, x.shape[-1], self.features), self.dtype)
    p = self.padding
    return jax.lax.conv_general_dilated(
        x, k.astype(x.dtype), (self.stride, self.stride), ((p, p), (p, p)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


class BatchNorm(nn.Module):
  """BatchNorm2d with PyTorch semantics.

  Inference (``train=False``): ``(x - running_mean) / sqrt(running_var + eps) * scale + bias``.
  Training: normalise with the biased batch variance over (N, H, W) and update the running
  statistics as PyTorch does: ``running = (1 - momentum) * running + momentum * batch`` with
  ``momentum = 0.1`` and the *unbiased* batch variance (n / (n - 1)) for ``running_var``.
  Variables: params ``scale``, ``bias``; batch_stats ``mean``, ``var``.
  """
  momentum: float = BN_MOMENTUM
  epsilon: float = BN_EPS
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,), self.dtype)
    bias = self.param("bias", nn.initializers.zeros, (c,), self.dtype)
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), self.dtype))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), self.dtype))
    if train:
      axes = tuple(range(x.ndim - 1))
      mean = jnp.mean(x, axes)
      var = jnp.mean(jnp.square(x - mean), axes)  # two-pass, biased
      if not self.is_initializing():
        n = int(np.prod([x.shape[a] for a in axes]))
        unbiased = var * (n / max(n - 1, 1))
        m = self.momentum
        ra_mean.value = (1 - m) * ra_mean.value + m * mean.astype(self.dtype)
        ra_var.value = (1 - m) * ra_var.value + m * unbiased.astype(self.dtype)
    else:
      mean, var = ra_mean.value, ra_var.value
    mul = jax.lax.rsqrt(var.astype(x.dtype) + self.epsilon) * scale.astype(x.dtype)
    return (x - mean.astype(x.dtype)) * mul + bias.astype(x.dtype)


def avg_pool(x, k):
  """AvgPool2d(k): kernel = stride = k, no padding (VALID)."""
  if k == 1:
    return x
  return nn.avg_pool(x, (k, k), strides=(k, k), padding="VALID")


class Dense(nn.Module):
  """Linear layer named like torch ``nn.Linear`` (kernel = weight.T), PyTorch default init."""
  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  kernel_init: Any = None
  bias_init: Any = None

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    kinit = self.kernel_init or torch_linear_init(fan_in)
    k = self.param("kernel", kinit, (fan_in, self.features), self.dtype)
    y = jnp.dot(x, k.astype(x.dtype))
    if self.use_bias:
      binit = self.bias_init or torch_linear_init(fan_in)
      y = y + self.param("bias", binit, (self.features,), self.dtype).astype(x.dtype)
    return y


class LayerNorm(nn.Module):
  """LayerNorm over the last axis, eps 1e-5, two-pass variance (PyTorch numerics)."""
  epsilon: float = LN_EPS
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,), self.dtype)
    bias = self.param("bias", nn.initializers.zeros, (c,), self.dtype)
    mean = jnp.mean(x, -1, keepdims=True)
    xc = x - mean
    var = jnp.mean(jnp.square(xc), -1, keepdims=True)
    return xc * jax.lax.rsqrt(var + self.epsilon) * scale.astype(x.dtype) + bias.astype(x.dtype)
