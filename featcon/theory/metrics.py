"""Measurements behind the theorems (docs/theory.md, "What to measure").

With ``P = W M`` (m x K), ``P_rj = <w_r, m_j>`` the projection of neuron r on feature j:

* ``core_corr`` = mean_r ||P_{r,core}||_2, ``bg_corr`` = mean_r ||P_{r,bg}||_2 (the public
  script's "Avg. Feature Corr.", Fig. 8);
* ``bg_signed`` = mean_{r, j in S_bg} P_rj (Theorem 4.2: grows positive under ReLU);
* ``core_align`` = mean_{r, j in S_core} sign(a_r) P_rj (core sign alignment; classification);
* ``id_risk``/``ood_risk`` and ``id_error``/``ood_error``: loss and 0-1 error on large fresh ID
  and OOD samples (Theorem 4.3); in the fixed-set regime also ``train_*`` on the fixed set and
  its OOD counterpart; for regression ``id_mse``/``ood_mse`` (Fig. 9);
* activation asymmetry (Theorem 4.1, Fig. 7): ``h_r(y) = E[<w_r, x> + b_r | y]`` and
  ``p_r(y) = P(<w_r, x> + b_r > 0 | y)`` on the ID sample; a neuron is asymmetric when
  ``h_r(y) > 0`` for at most one class; ``asym_frac`` is their fraction, ``act_rate_pos`` /
  ``act_rate_neg`` the per-neuron ``p_r(+1)``, ``p_r(-1)`` (NaN for masked neurons).

Per-layer measurements (``Static.layer_metrics``, docs/theory.md, "Per-layer measurements"),
for every hidden layer ``l`` of :func:`layer_metrics`: ``sens_core_l<l>``, ``sens_bg_l<l>``
(and ``sens_sp_l<l>`` for the spurious coordinates) the mean squared Jacobian entries
``E (dh_{l,r} / dz_j)^2`` over neurons and over the coordinates of each block, and
``ood_move_l<l>``, the RMS movement of ``h_l`` under the OOD shift in units of its RMS
distance between two independent ID samples. With ``Static.k_spurious``, the first-layer
``sp_align`` and ``bg_signed_clean`` (:func:`spurious_projections`).

Means over neurons respect the width mask, so a padded network measures like the narrow one.
With a vector of shift strengths (``Static.n_shifts``), the OOD metrics (:data:`SHIFT_KEYS`)
are measured for each shift on the same network and gain a trailing shift axis.
"""
import jax
import jax.numpy as jnp

from featcon.theory import losses, network

SCALAR_KEYS = ("id_risk", "ood_risk", "id_error", "ood_error", "core_corr", "bg_corr",
               "bg_signed", "core_align", "asym_frac", "act_rate_gap")
# The metrics that depend on the shift strength (measured on the OOD sets).
SHIFT_KEYS = ("ood_risk", "ood_error", "ood_mse", "train_ood_risk", "train_ood_error") + tuple(
    f"ood_move_l{l}" for l in range(1, network.MAX_DEPTH + 1))
# The fresh ID samples (the first rows of the ID evaluation set) the Jacobians are taken on.
SENS_SAMPLES = 256
# Rows of an evaluation set measured at once (:func:`row_sums`).
EVAL_BLOCK = 128


def projections(params, basis):
  """``P = W M`` (m, K): each neuron's projection on each feature."""
  return params["W"] @ basis


def feature_correlations(P, k_core, mask):
  """(core_corr, bg_corr, bg_signed) of docs/theory.md over the neurons where ``mask`` is 1."""
  msum = jnp.sum(mask)
  core = jnp.linalg.norm(P[:, :k_core], axis=1)
  bgp = P[:, k_core:]
  k_bg = bgp.shape[1]
  bg = jnp.linalg.norm(bgp, axis=1) if k_bg else jnp.zeros_like(core)
  bg_signed = jnp.sum(mask[:, None] * bgp) / (msum * max(k_bg, 1))
  return jnp.sum(mask * core) / msum, jnp.sum(mask * bg) / msum, bg_signed


def class_sums(pre, y):
  """The sums :func:`class_conditional` divides, over the rows of one block: per class
  (y = +1, then y = -1) the summed pre-activations (2, m), the number of active rows
  ``pre > 0`` (2, m) and the class sizes (2,), from pre-activations (n, m) and labels (n,)."""
  classes = jnp.stack([y > 0, y <= 0]).astype(pre.dtype)        # (2, n)
  return classes @ pre, classes @ (pre > 0).astype(pre.dtype), jnp.sum(classes, axis=1)


def class_conditional(sums):
  """``h_r(y)`` and ``p_r(y)`` for y = +1 and -1 (each (m,)) from :func:`class_sums` summed
  over the ID evaluation set: ``h_r(y) = E[pre_r | y]``, ``p_r(y) = P(pre_r > 0 | y)``."""
  pre_sums, active_sums, counts = sums
  npos = jnp.maximum(counts[0], 1.0)
  nneg = jnp.maximum(counts[1], 1.0)
  return (pre_sums[0] / npos, pre_sums[1] / nneg, active_sums[0] / npos, active_sums[1] / nneg)


def asymmetric_fraction(h_pos, h_neg, mask):
  """Fraction of (unmasked) neurons with ``h_r(y) > 0`` for at most one class (Thm 4.1)."""
  asym = ((h_pos > 0).astype(jnp.float32) + (h_neg > 0).astype(jnp.float32)) <= 1
  return jnp.sum(mask * asym) / jnp.sum(mask)


def row_sums(fn, arrays, block=None):
  """``sum_i fn(rows_i)`` over blocks of ``block`` rows of ``arrays`` (each (n, ...)):
  ``fn(*blocks)`` returns a pytree of sums over its block's rows, and the result is their sum
  over the whole set (a ``lax.scan`` over the full blocks, then the remaining rows).

  Measuring a large evaluation set block by block keeps each block's pre-activations in cache
  instead of writing and re-reading an (n, m) array per configuration; the sums equal the
  one-block sums to float rounding. ``block=None`` takes :data:`EVAL_BLOCK`."""
  block = EVAL_BLOCK if block is None else block
  n = arrays[0].shape[0]
  full = n // block
  if full <= 1:
    return fn(*arrays)
  head = [a[:full * block].reshape(full, block, *a.shape[1:]) for a in arrays]
  init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                      jax.eval_shape(fn, *[h[0] for h in head]))
  total, _ = jax.lax.scan(lambda acc, blk: (jax.tree.map(jnp.add, acc, fn(*blk)), None),
                          init, head)
  if n > full * block:
    total = jax.tree.map(jnp.add, total, fn(*[a[full * block:] for a in arrays]))
  return total


def measure(static, prob, params, act, mask):
  """All measurements at one log step (see the module docstring); a dict of arrays.

  The risks, errors and class-conditional statistics are means over the evaluation sets,
  accumulated block by block (:func:`row_sums`); with ``static.layer_metrics`` the ID set is
  measured in one block, whose pre-activations the per-layer measurements reuse."""
  loss_fn = losses.loss_fn(static.loss)
  out = {}
  P = projections(params, prob.basis)
  out["core_corr"], out["bg_corr"], out["bg_signed"] = feature_correlations(P, static.k_core, mask)
  classification = static.task == "classification"

  def loss_sums(pre, t):
    """(summed loss, summed 0-1 error) of the rows with first-layer pre-activations ``pre``."""
    f = network.readout(params, pre, act, mask)
    err = jnp.sum(losses.zero_one(f, t)) if classification else jnp.float32(jnp.nan)
    return jnp.sum(loss_fn(f, t)), err

  def risk_error(x, t):
    n = x.shape[0]
    s = row_sums(lambda xb, tb: loss_sums(network.preactivation(params, xb), tb), (x, t))
    return s[0] / n, s[1] / n

  def ood_risk_error(x, t):
    """risk_error on an OOD set, or on each of a stack of them (one per shift strength)."""
    if static.n_shifts:
      return jax.vmap(lambda xs: risk_error(xs, t))(x)
    return risk_error(x, t)

  def id_sums(pre, t, y):
    """loss_sums and :func:`class_sums` of one block."""
    return loss_sums(pre, t), class_sums(pre, y)

  n_eval = prob.eval_x.shape[0]
  if static.layer_metrics:
    pre = network.preactivation(params, prob.eval_x)  # shared with the per-layer measurements
    sums = id_sums(pre, prob.eval_t, prob.eval_y)
  else:
    sums = row_sums(lambda xb, tb, yb: id_sums(network.preactivation(params, xb), tb, yb),
                    (prob.eval_x, prob.eval_t, prob.eval_y))
  (loss_sum, err_sum), cls = sums
  out["id_risk"], out["id_error"] = loss_sum / n_eval, err_sum / n_eval
  out["ood_risk"], out["ood_error"] = ood_risk_error(prob.eval_ood_x, prob.eval_t)
  if not classification:
    out["id_mse"], out["ood_mse"] = out["id_risk"], out["ood_risk"]
  if static.regime == "fixed":
    out["train_risk"], out["train_error"] = risk_error(prob.train_x, prob.train_t)
    out["train_ood_risk"], out["train_ood_error"] = ood_risk_error(prob.train_ood_x,
                                                                   prob.train_t)

  if classification:
    sign_a = jnp.sign(params["a"])
    out["core_align"] = jnp.sum(mask * sign_a * jnp.mean(P[:, :static.k_core], 1)) / jnp.sum(mask)
  else:
    out["core_align"] = jnp.float32(jnp.nan)
  h_pos, h_neg, p_pos, p_neg = class_conditional(cls)
  out["asym_frac"] = asymmetric_fraction(h_pos, h_neg, mask)
  out["act_rate_gap"] = jnp.sum(mask * jnp.abs(p_pos - p_neg)) / jnp.sum(mask)
  nan = jnp.float32(jnp.nan)
  out["act_rate_pos"] = jnp.where(mask > 0, p_pos, nan)
  out["act_rate_neg"] = jnp.where(mask > 0, p_neg, nan)
  if static.k_spurious:
    out["sp_align"], out["bg_signed_clean"] = spurious_projections(
        P, params["a"], static.k_core, static.k_spurious, mask, classification)
  if static.layer_metrics:
    ood_pre = network.preactivation(params, prob.eval_ood_x)
    out.update(layer_metrics(static, params, prob.basis, prob.eval_x, pre, ood_pre, act, mask))
  return out


def spurious_projections(P, a, k_core, k_spurious, mask, classification=True):
  """First-layer projections on the spurious and on the other background coordinates:
  ``sp_align = mean_{r, j in S_sp} sign(a_r) P_rj`` (classification; NaN otherwise) and
  ``bg_signed_clean = mean_{r, j in S_bg \\ S_sp} P_rj`` (NaN when every background coordinate is
  spurious), over unmasked neurons."""
  msum = jnp.sum(mask)
  sp = P[:, k_core:k_core + k_spurious]
  rest = P[:, k_core + k_spurious:]
  nan = jnp.float32(jnp.nan)
  if classification:
    sign_a = jnp.sign(a)
    sp_align = jnp.sum(mask[:, None] * sign_a[:, None] * sp) / (msum * k_spurious)
  else:
    sp_align = nan
  clean = (jnp.sum(mask[:, None] * rest) / (msum * rest.shape[1]) if rest.shape[1] else nan)
  return sp_align, clean


def _mean_sq_dist(h1, h2):
  """``mean_i ||h1_i - h2_i||^2`` over the rows."""
  return jnp.mean(jnp.sum((h1 - h2) ** 2, axis=-1))


def layer_metrics(static, params, basis, x, pre, ood_pre, act, mask):
  """Per-layer sensitivities and OOD movement (module docstring, docs/theory.md).

  Args:
    static: the run's ``Static`` (``k_core``, ``k_spurious``, ``n_shifts``).
    params: network params (``W`` layout), any depth.
    basis: (D, K), ``x = z @ basis.T`` (M on the input path, I on the feature path).
    x: the ID evaluation inputs (n, D); ``pre``: their first-layer pre-activations (n, m).
    ood_pre: the paired OOD pre-activations (n, m), or (S, n, m) for ``static.n_shifts``.
    act: the activation; ``mask``: (m,) neuron mask.

  Returns:
    ``{sens_core_l<l>, sens_bg_l<l>, [sens_sp_l<l>], ood_move_l<l>}`` for l = 1..L.

  Sensitivity: with ``J_l(x) = dh_l / dz`` (m x K), propagated exactly in forward mode
  (``J_1 = diag(sigma'(u_1)) W basis``, ``J_l = diag(sigma'(u_l)) W_l J_{l-1}``, masked rows
  zero), ``sens_B = sum_{i, r, j in B} J_l(x_i)_{rj}^2 / (n_s m_eff |B|)`` over the first
  ``n_s = min(n, SENS_SAMPLES)`` ID samples. Movement: ``ood_move = sqrt(mean_i ||h_l(x_i^OOD)
  - h_l(x_i)||^2 / mean_{i < n/2} ||h_l(x_i) - h_l(x_{i + n/2})||^2)``.
  """
  out = {}
  k_core, k_sp = static.k_core, static.k_spurious
  k = basis.shape[1]
  msum = jnp.sum(mask)
  n = x.shape[0]
  half = n // 2
  hs = network.hidden_states(params, pre, act, mask)
  if static.n_shifts:
    ood_hs = jax.vmap(lambda p: network.hidden_states(params, p, act, mask))(ood_pre)
  else:
    ood_hs = network.hidden_states(params, ood_pre, act, mask)
  dact = lambda u: jax.jvp(act, (u,), (jnp.ones_like(u),))[1]  # sigma'(u), elementwise
  ns = min(n, SENS_SAMPLES)
  u = pre[:ns]
  jac = dact(u)[:, :, None] * (params["W"] @ basis)[None]   # (ns, m, K)
  for l in range(1, len(hs) + 1):
    if l > 1:
      kw, kb = network.layer_keys(l)
      u = hs[l - 2][:ns] @ params[kw].T
      if kb in params:
        u = u + params[kb]
      jac = dact(u)[:, :, None] * jnp.einsum("rs,nsj->nrj", params[kw], jac)
    jac = jac * mask[None, :, None]
    sq = jnp.sum(jac ** 2, axis=(0, 1)) / (ns * msum)      # (K,): mean over samples, neurons
    out[f"sens_core_l{l}"] = jnp.mean(sq[:k_core])
    out[f"sens_bg_l{l}"] = jnp.mean(sq[k_core:]) if k > k_core else jnp.float32(jnp.nan)
    if k_sp:
      out[f"sens_sp_l{l}"] = jnp.mean(sq[k_core:k_core + k_sp])
    h = hs[l - 1]
    base = _mean_sq_dist(h[:half], h[half:2 * half])
    move = (jax.vmap(lambda o: _mean_sq_dist(o, h))(ood_hs[l - 1]) if static.n_shifts
            else _mean_sq_dist(ood_hs[l - 1], h))
    out[f"ood_move_l{l}"] = jnp.sqrt(move / base)
  return out
