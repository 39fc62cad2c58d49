"""Grad-CAM heatmaps for any Flax encoder of featcon (Section 5, Figure 6).

Grad-CAM (Selvaraju et al. 2017; the paper cites the Grad-CAM++ paper of Chattopadhay et al.
2018 and calls its maps Grad-CAM) weights each channel k of a feature map A (H×W×C) by the
spatial mean of the gradient of the class score y_c:

  α_k = mean_{ij} ∂y_c / ∂A_ijk,   L_c = ReLU(Σ_k α_k A_k),

then upsamples L_c to the input and scales it to [0, 1] per image. For ViT tokens (T×D) the
class token is dropped and the rest are laid out on their square grid.

The encoder contract only exposes an intermediate's *value* (`module.apply(...)[1][name]`), not a
handle to differentiate through. `find_producer` therefore runs the module once with a Flax
method interceptor and records which submodule call returns exactly that value; `grad_cam` then
adds a zero perturbation to that call's output and differentiates the score with respect to it.
This works for every module whose named intermediate is the output of a submodule (a block or a
stage): featcon.clip's ResNets return "layer{i}" from their last Bottleneck "layer{i}_{n-1}", its
ViTs "block{i}" (and "block{i}_mlp_act", a second output) from "transformer_resblocks_{i}", the
SmallResNet "layer{i}" from its `Stage`. Not differentiable this way: the CLIP "stem"s (an
average pool / a reshape), the ViT "embedding" (a matrix product in the tower itself).
"""
import functools
import math
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class Producer(NamedTuple):
  """The submodule call whose output (or one leaf of it, for a tuple output) is the intermediate."""
  path: tuple
  call_index: int
  leaf: int


def _count_call(counts, ctx):
  """``(key, index)`` of this submodule call: how many calls of ``key`` came before it.

  The recorder and the perturber must number calls identically; both use this.
  """
  key = _call_key(ctx)
  idx = counts.get(key, 0)
  counts[key] = idx + 1
  return key, idx


def _call_key(ctx):
  return tuple(ctx.module.path)


def find_producer(module, variables, x, layer, apply_kwargs=None):
  """Finds the submodule call that returns intermediate `layer` (see the module docstring).

  Raises:
    ValueError: when `layer` is not an intermediate of the module, or no submodule call returns
      its value (then choose a layer that is a block's output).
  """
  kw = dict(apply_kwargs or {})
  _, inter = module.apply(variables, x, **kw)
  if layer not in inter:
    raise ValueError(f"layer={layer!r}: not an intermediate of this encoder; "
                     f"allowed: {sorted(inter)}")
  target = np.asarray(inter[layer])
  counts, matches = {}, []

  def record(next_fun, args, kwargs, ctx):
    out = next_fun(*args, **kwargs)
    if ctx.method_name == "__call__":
      key, idx = _count_call(counts, ctx)
      if key:
        for j, leaf in enumerate(jax.tree.leaves(out)):
          if (isinstance(leaf, jax.Array) and leaf.shape == target.shape
              and np.array_equal(np.asarray(leaf), target)):
            matches.append(Producer(key, idx, j))
    return out

  with nn.intercept_methods(record):
    module.apply(variables, x, **kw)
  if not matches:
    raise ValueError(f"layer={layer!r}: no submodule call returns this intermediate, so Grad-CAM "
                     "cannot differentiate with respect to it; choose a block or stage output")
  return matches[0]  # the innermost call: it finishes first


def _perturb(producer, delta):
  counts = {}

  def add(next_fun, args, kwargs, ctx):
    out = next_fun(*args, **kwargs)
    if ctx.method_name == "__call__":
      key, idx = _count_call(counts, ctx)
      if key == producer.path and idx == producer.call_index:
        leaves, tree = jax.tree.flatten(out)
        leaves[producer.leaf] = leaves[producer.leaf] + delta
        out = jax.tree.unflatten(tree, leaves)
    return out

  return add


def _to_grid(a):
  """(N, H, W, C) stays; (N, T, C) tokens drop a class token and become (N, g, g, C)."""
  if a.ndim == 4:
    return a
  if a.ndim != 3:
    raise ValueError(f"activation shape {a.shape}: Grad-CAM needs (N, H, W, C) or (N, T, C)")
  t = a.shape[1]
  for drop in (0, 1):
    g = math.isqrt(t - drop)
    if g * g == t - drop:
      return a[:, drop:].reshape(a.shape[0], g, g, a.shape[2])
  raise ValueError(f"tokens T={t}: neither T nor T-1 is a square, cannot lay tokens on a grid")


def cam_from(acts, grads, out_hw):
  """Grad-CAM maps from activations and gradients of the same shape; (N, *out_hw) in [0, 1]."""
  a, g = _to_grid(acts), _to_grid(grads)
  alpha = g.mean(axis=(1, 2))                          # (N, C)
  cam = jax.nn.relu(jnp.einsum("nhwc,nc->nhw", a, alpha))
  cam = jax.image.resize(cam, (cam.shape[0], *out_hw), "bilinear")
  cam = jnp.maximum(cam, 0.0)
  return cam / jnp.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12)


def grad_cam(module, variables, images, layer, score_fn: Callable, targets,
             apply_kwargs=None, producer=None, score_params=None):
  """Grad-CAM heatmaps of `layer` for the class scores `score_fn(embedding)[n, targets[n]]`.

  Args:
    module: a Flax module with the featcon contract `apply(variables, x, **kw) -> (emb, inter)`.
    variables: its variables.
    images: (N, H, W, C) float32 inputs.
    layer: name of the intermediate to explain (e.g. "layer4", "block11").
    score_fn: maps the embedding to class scores (N, K); the identity for a classifier, a linear
      probe (`representation.probe_scores`) for an encoder.
    targets: (N,) classes whose scores are explained (usually the true labels).
    apply_kwargs: extra keyword arguments for `apply` (default none; pass `{"train": False}`).
    producer: result of `find_producer`, to skip the search on repeated calls.
    score_params: when given, the scores are `score_fn(score_params, embedding)` with the
      parameters traced, not baked into the compiled function: one module-level `score_fn`
      (e.g. `representation.probe_scores`) then serves every encoder's probe without
      recompiling.

  Returns:
    (N, H, W) heatmaps scaled to [0, 1] per image.
  """
  kw = tuple(sorted(dict(apply_kwargs or {}).items()))
  images = jnp.asarray(images, jnp.float32)
  if producer is None:
    producer = find_producer(module, variables, images, layer, dict(kw))
  if score_params is None:
    score_params, fn = (), _Unary(score_fn)
  else:
    fn = score_fn
  acts, grads = _acts_and_grads(module, variables, images, jnp.asarray(targets), layer,
                                fn, kw, producer, score_params)
  return cam_from(acts, grads, images.shape[1:3])


class _Unary(NamedTuple):
  """`score_fn(emb)` as `f(params, emb)`; hashes (and so compiles) as the function it wraps."""
  fn: Callable

  def __call__(self, params, emb):
    del params
    return self.fn(emb)


@functools.partial(jax.jit, static_argnames=("module", "layer", "score_fn", "kw", "producer"))
def _acts_and_grads(module, variables, images, targets, layer, score_fn, kw, producer,
                    score_params):
  """The named intermediate and d(Σ_n score[n, targets[n]]) / d(intermediate), compiled once per
  (module, layer, score_fn, producer, shapes)."""
  kw = dict(kw)

  def score(delta):
    with nn.intercept_methods(_perturb(producer, delta)):
      emb, inter = module.apply(variables, images, **kw)
    logits = score_fn(score_params, emb)
    return jnp.take_along_axis(logits, targets[:, None], axis=1).sum(), inter[layer]

  shape = jax.eval_shape(lambda: module.apply(variables, images, **kw)[1][layer]).shape
  grads, acts = jax.grad(score, has_aux=True)(jnp.zeros(shape, jnp.float32))
  return acts, grads


def cam_mass_in_mask(cams, mask):
  """Fraction of each heatmap's mass inside a (H, W) or (N, H, W) mask, shape (N,).

  With the mask on the object (the digit) this measures how much of the explanation stays on the
  core features when only the background changes (Figure 6b made quantitative).
  """
  cams = jnp.asarray(cams)
  mask = jnp.broadcast_to(jnp.asarray(mask, cams.dtype), cams.shape)
  return (cams * mask).sum((1, 2)) / jnp.maximum(cams.sum((1, 2)), 1e-12)
