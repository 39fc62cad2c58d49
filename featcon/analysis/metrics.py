"""Activation metrics of Section 5 and Appendices F.2, F.3 and G.2, as pure functions.

All functions work on activations *after* a layer's nonlinearity, laid out channel-last:
`(N, C)` for vectors, `(N, T, C)` for ViT tokens, `(N, H, W, C)` for conv maps. Every position
(pixel or token) of an example counts as one observation of each channel.

The statistics are streamed: `class_stats` reduces one batch to per-class sums, sums of batches
are added with `add_stats` (a tree sum), and the metrics read the totals. Nothing here keeps the
activations of a whole data set in memory, so the same code serves an 8×8 toy and RN50 at 224².

References: Zhang et al. (ICML 2024) Section 5 ("Activation asymmetry in deep networks"),
Appendix F.2 (class activation rates), F.3 (neuron selectivity, after Morcos et al. 2018),
G.2 (activation density); `docs/theory.md`, last section.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from featcon.analysis import gradcam

SELECTIVITY_MODES = ("morcos", "all")


class ClassStats(NamedTuple):
  """Per-class sums over examples and positions, for one layer.

  Attributes:
    count: (K,) number of observations (examples × positions) of each class.
    examples: (K,) number of examples of each class.
    act_sum: (K, C) sum of activations per class and channel.
    active_sum: (K, C) number of observations with activation > 0 per class and channel.
    active_frac_sum: (K,) sum over examples of the fraction of units (channels × positions)
      that are active on that example.
  """
  count: jax.Array
  examples: jax.Array
  act_sum: jax.Array
  active_sum: jax.Array
  active_frac_sum: jax.Array


def _as_nlc(acts):
  """Reshapes activations to (N, L, C): L positions per example."""
  acts = jnp.asarray(acts)
  if acts.ndim < 2:
    raise ValueError(f"acts.ndim={acts.ndim}: activations must be (N, C), (N, T, C) or "
                     "(N, H, W, C)")
  return acts.reshape(acts.shape[0], -1, acts.shape[-1])


def class_stats(acts, labels, num_classes):
  """Reduces one batch of post-nonlinearity activations to per-class sums (`ClassStats`).

  For channel k, class c, the activation rate of Appendix F.2 is
  `p_k(c) = P(σ(h_k) > 0 | y = c)` over inputs and positions, and the class-conditional mean
  activation of Appendix F.3 is `μ_k(c) = E[σ(h_k) | y = c]`; this function returns the sums
  from which both are read. With ReLU, GELU or QuickGELU, `σ(h) > 0` iff `h > 0`.

  Args:
    acts: (N, ..., C) activations after the nonlinearity.
    labels: (N,) integer classes in [0, num_classes); other values are ignored (use -1 to mask).
    num_classes: K, a Python int.

  Returns:
    `ClassStats` with leading class axis K. Jit-able with `num_classes` static.
  """
  x = _as_nlc(acts).astype(jnp.float32)
  labels = jnp.asarray(labels)
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)  # (N, K); 0 row if out of range
  n_pos = x.shape[1]
  active = (x > 0).astype(jnp.float32)
  return ClassStats(
      count=onehot.sum(0) * n_pos,
      examples=onehot.sum(0),
      act_sum=onehot.T @ x.sum(1),
      active_sum=onehot.T @ active.sum(1),
      active_frac_sum=onehot.T @ active.mean((1, 2)),
  )


def add_stats(a, b):
  """Adds two `ClassStats` (or any matching pytrees) leaf by leaf."""
  return jax.tree.map(jnp.add, a, b)


def _safe_div(num, den):
  return num / jnp.maximum(den, 1.0)


def activation_rates(stats):
  """Class activation rates `p_k(c)`, shape (K, C) (Appendix F.2, Figures 4, 11, 12).

  Classes without observations get rate 0.
  """
  return _safe_div(stats.active_sum, stats.count[:, None])


def class_mean_rates(stats):
  """Per-class activation rate averaged over channels, shape (K,).

  Appendix F.2: "for every block ... the mean activation rate for every class averaged over all
  channels"; its histogram over classes is the paper's class activation-rate histogram.
  """
  return activation_rates(stats).mean(axis=1)


def rate_asymmetry(stats):
  """Per-channel `max_c p_k(c) − mean_{c ≠ argmax} p_k(c)`, shape (C,).

  The multi-class counterpart of docs/theory.md's `p_r(+1) − p_r(−1)` (Theorem 4.1, Figure 7): 1 when a
  channel fires for one class only, 0 when it fires equally for all.
  """
  return _max_minus_rest(activation_rates(stats))


def class_means(stats):
  """Class-conditional mean activations `μ_k(c)`, shape (K, C) (Appendix F.3)."""
  return _safe_div(stats.act_sum, stats.count[:, None])


def _top_and_rest(per_class):
  """Per column: the largest value and the mean of the other rows (Morcos et al.'s μ_rest)."""
  top = per_class.max(axis=0)
  return top, (per_class.sum(axis=0) - top) / max(per_class.shape[0] - 1, 1)


def _max_minus_rest(per_class):
  top, rest = _top_and_rest(per_class)
  return top - rest


def selectivity(means, mode="morcos", eps=1e-6):
  """Neuron selectivity of each channel from class-conditional means (Appendix F.3, eq. 61).

  `s_k = (μ_max − μ_rest) / (μ_max + μ_rest + ε)` with `μ_max = max_c μ_k(c)` and
  - mode "morcos" (default, Morcos et al. 2018): `μ_rest` = mean over the *other* classes;
  - mode "all" (the paper's wording): `μ_rest` = mean over all classes.
  For non-negative activations `s_k ∈ [0, 1]`: 0 when every class activates the channel equally,
  1 when only one class does. GELU and attention-pool outputs can be negative, where the ratio is
  not bounded; the paper applies it there all the same.

  Args:
    means: (K, C) class-conditional mean activations, K ≥ 2.
    mode: "morcos" or "all".
    eps: ε in the denominator.

  Returns:
    (C,) selectivities. Average them for a layer's value (Figure 5).
  """
  if mode not in SELECTIVITY_MODES:
    raise ValueError(f"mode={mode!r}: selectivity mode must be one of {SELECTIVITY_MODES}")
  means = jnp.asarray(means)
  if means.ndim != 2 or means.shape[0] < 2:
    raise ValueError(f"means.shape={means.shape}: need (num_classes >= 2, channels)")
  top, rest = _top_and_rest(means)
  if mode == "all":
    rest = means.mean(axis=0)
  return (top - rest) / (top + rest + eps)


def unit_means(stats):
  """Each channel's mean activation over all examples and positions, shape (C,).

  Appendix G.2, Figure 15: the histogram of these values compares how densely a teacher and a
  distilled student activate their units.
  """
  return stats.act_sum.sum(0) / jnp.maximum(stats.count.sum(), 1.0)


def active_fraction(stats):
  """Mean over examples of the fraction of units active on an example (a scalar, Appendix G.2).

  "Denser activation" in G.2 means more neurons activated for each input; this is that count,
  normalised by the number of units.
  """
  return stats.active_frac_sum.sum() / jnp.maximum(stats.examples.sum(), 1.0)


def density_summary(stats, threshold=1e-3):
  """Scalars that summarise `unit_means` (Appendix G.2) as a dict of floats.

  Keys: `mean_unit_activation`, `median_unit_activation`, `frac_units_above` (fraction of units
  whose mean activation exceeds `threshold`), `active_fraction` (see `active_fraction`).
  """
  m = unit_means(stats)
  return {
      "mean_unit_activation": float(m.mean()),
      "median_unit_activation": float(jnp.median(m)),
      "frac_units_above": float((m > threshold).mean()),
      "threshold": float(threshold),
      "active_fraction": float(active_fraction(stats)),
  }


def mask_at(mask, h, w):
  """An object mask (N, H, W) or (H, W) brought to a layer's (h, w) grid: the mean of the mask
  over each cell's H/h × W/w input pixels when the sides divide, else an antialiased linear
  resize (the share of each cell that the object covers)."""
  mask = jnp.asarray(mask, jnp.float32)
  lead, (hh, ww) = mask.shape[:-2], mask.shape[-2:]
  if hh % h == 0 and ww % w == 0:
    return mask.reshape(*lead, h, hh // h, w, ww // w).mean((-3, -1))
  return jax.image.resize(mask, (*lead, h, w), "linear", antialias=True)


def activation_share_in_mask(acts, mask):
  """Per example, the share of a layer's activation that lies on the object (Section 5: where
  a network's units respond): `Σ_{ij} m_ij Σ_k a_ijk / Σ_{ij} Σ_k a_ijk`, shape (N,), with the
  mask brought to the map's grid by `mask_at`. Compare with the object's share of the grid
  (`mask_at(mask, h, w).mean((-2, -1))`), which a layer responding to every position alike has.

  Args:
    acts: (N, h, w, C) post-nonlinearity activations (non-negative, e.g. ReLU6).
    mask: (N, H, W) or (H, W) object mask in [0, 1].
  """
  acts = jnp.asarray(acts, jnp.float32)
  if acts.ndim != 4:
    raise ValueError(f"acts.shape={acts.shape}: need a spatial map (N, h, w, C)")
  # The same share as a heatmap's mass on the object, of the per-position activation total.
  return gradcam.cam_mass_in_mask(acts.sum(-1), mask_at(mask, *acts.shape[1:3]))
