"""The structured feature model of Definition 3.1 (docs/theory.md, "Features and data").

Every input is ``x = M z`` with an orthonormal dictionary ``M = [m_1 ... m_K]`` in R^{d x K}
whose first ``k_core`` columns are the core features and the remaining ``k_bg`` the background
features. Everything here is a pure function of PRNG keys, so it can be ``jit``-ed and
``vmap``-ed; the functions draw *prefix-consistent* samples: asking for ``n`` rows returns the
first ``n`` rows of what a request for ``n' > n`` rows would return (JAX's partitionable
threefry), which is what lets the sweep engine pad batch sizes exactly.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

COEFF_DISTS = ("uniform", "beta", "bernoulli")
CORE_KINDS = ("linear", "sphere")


class Batch(NamedTuple):
  """Feature coefficients ``z`` (n, K), labels ``y`` in {-1, +1} (n,) and the core block of ``z``."""
  z: jax.Array
  y: jax.Array


def dictionary(key, d, k):
  """Orthonormal feature dictionary ``M`` (d, k): the Q factor of a d x k Gaussian (Def. 3.1).

  Signs are fixed so that diag(R) > 0, which makes ``M`` a deterministic function of the draw.
  """
  g = jax.random.normal(key, (d, k), jnp.float32)
  q, r = jnp.linalg.qr(g)
  return q * jnp.sign(jnp.diagonal(r))[None, :]


def coefficients(key, shape, dist="uniform"):
  """Draws i.i.d. coefficients from the distribution ``D`` on [0, 1] (Def. 3.1).

  Args:
    key: PRNG key.
    shape: output shape.
    dist: ``"uniform"`` (Uniform[0, 1], the paper's choice: mean 1/2, E u^2 = 1/3),
      ``"beta"`` (Beta(2, 2): same support and mean, variance 1/20) or ``"bernoulli"``
      (values in {0, 1} with probability 1/2 each: same support and mean, variance 1/4).
  """
  if dist == "uniform":
    return jax.random.uniform(key, shape, jnp.float32)
  if dist == "beta":
    return jax.random.beta(key, 2.0, 2.0, shape, jnp.float32)
  if dist == "bernoulli":
    return jax.random.bernoulli(key, 0.5, shape).astype(jnp.float32)
  raise ValueError(f"data.coeff_dist={dist!r} is not one of {COEFF_DISTS}")


def labels(key, n, balanced=False):
  """Labels in {-1, +1}: i.i.d. uniform, or exactly half of each class (first half +1) if balanced."""
  if balanced:
    return jnp.where(jnp.arange(n) < (n + 1) // 2, 1.0, -1.0).astype(jnp.float32)
  return jnp.where(jax.random.bernoulli(key, 0.5, (n,)), 1.0, -1.0).astype(jnp.float32)


def core_block(key, y, k_core, core="linear", dist="uniform", radii=(1.0, 2.0)):
  """Core coefficients ``z_core`` (n, k_core) given labels ``y``.

  ``"linear"`` (Def. 3.1): ``z_j = y u_j`` with ``u_j ~ D``; ``"sphere"`` (Fig. 3(d)/10): uniform
  on the sphere of radius ``radii[0]`` for y = +1 and ``radii[1]`` for y = -1 (a normalised
  Gaussian, as in the public script).
  """
  n = y.shape[0]
  if core == "linear":
    return y[:, None] * coefficients(key, (n, k_core), dist)
  if core == "sphere":
    g = jax.random.normal(key, (n, k_core), jnp.float32)
    g = g / jnp.linalg.norm(g, axis=1, keepdims=True)
    r = jnp.where(y > 0, radii[0], radii[1])
    return g * r[:, None]
  raise ValueError(f"data.core={core!r} is not one of {CORE_KINDS}")


def background_block(key, n, k_bg, shift, dist="uniform", y=None, rho=0.0, k_spurious=0):
  """Background coefficients (n, k_bg): ``v - s`` with ``v ~ D``, independent of the label
  unless ``k_spurious > 0``.

  ``shift`` s = 0 is the ID distribution ``D`` on [0, 1]; s = 1 is the paper's OOD ``D'`` on
  [-1, 0] (for the uniform default, exactly Uniform[-1, 0]); intermediate s interpolate
  (Uniform[-s, 1 - s]).

  Spurious correlation (docs/theory.md, "Spurious background coordinates"): with
  ``k_spurious > 0`` and labels ``y``, the first ``k_spurious`` background coordinates are
  ``v_j - s + (1 - 2 s) rho y``: at s = 0 (ID) their class means differ by ``2 rho``
  (``E[z_j | y] = E[v] + rho y``), at s = 1/2 the label term vanishes and at s = 1 (the
  default OOD shift) it is reversed. ``k_spurious = 0`` draws exactly the label-free block.
  """
  zb = coefficients(key, (n, k_bg), dist) - shift
  if k_spurious:
    sp = (jnp.arange(k_bg) < k_spurious).astype(jnp.float32)
    zb = zb + ((1.0 - 2.0 * jnp.asarray(shift, jnp.float32)) * rho) * y[:, None] * sp[None, :]
  return zb


def sample(key, n, *, k_core, k_bg, shift=0.0, core="linear", dist="uniform",
           radii=(1.0, 2.0), balanced=False, rho=0.0, k_spurious=0):
  """Draws ``n`` examples of the feature model in feature coordinates (Def. 3.1; with
  ``k_spurious > 0`` the spurious background of :func:`background_block`).

  Returns a :class:`Batch` with ``z = [z_core, z_bg]``; the input is ``x = z @ M.T``.
  """
  ky, kc, kb = jax.random.split(key, 3)
  y = labels(ky, n, balanced)
  zc = core_block(kc, y, k_core, core, dist, radii)
  zb = background_block(kb, n, k_bg, shift, dist, y, rho, k_spurious)
  return Batch(jnp.concatenate([zc, zb], axis=1), y)


def shift_background(key, batch, *, k_core, shift, dist="uniform", rho=0.0, k_spurious=0):
  """The OOD counterpart of a batch: same core coefficients and labels, background redrawn
  from ``D - s`` (spurious coordinates: :func:`background_block` at shift s).

  This is the public script's OOD set for the fixed-set regime.
  """
  n = batch.z.shape[0]
  zb = background_block(key, n, batch.z.shape[1] - k_core, shift, dist, batch.y, rho,
                        k_spurious)
  return Batch(jnp.concatenate([batch.z[:, :k_core], zb], axis=1), batch.y)
