"""Training as one jit-compiled ``lax.scan`` with in-scan measurements (THEORY.md, "Training").

The run is split into what changes compiled code or shapes (:class:`Static`, hashable) and
what only changes values (:class:`Dynamic`, a pytree of scalars). ``make_train(static)``
returns a pure function ``train(dynamic) -> (metrics, final)`` that ``jit``/``vmap`` compose
with, as in purejaxrl: the sweep engine ``vmap``s it over seeds, learning rates, weight
decays, init scales, shift strengths, widths (padded and masked), batch sizes (padded and
weighted) and activations (``lax.switch``).

Two exact paths (THEORY.md, last section):

* ``input``: the network sees ``x = M z`` in R^d; any optimizer.
* ``feature``: for rotation-equivariant optimizers (SGD with coupled decay, with or without
  momentum) ``dL/dW = (dL/dP) M^T``, so ``P = W M`` follows closed dynamics with inputs
  ``z`` in R^K, and the part of ``W`` orthogonal to span(M) only scales: with momentum,
  ``W_perp(t) = alpha_t W_perp(0)`` where ``beta_{t+1} = lambda alpha_t + mu beta_t``,
  ``alpha_{t+1} = alpha_t - eta_t beta_{t+1}``. ``path="auto"`` picks it whenever it is exact.
"""
import dataclasses
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from featcon import features, losses, metrics as metrics_lib, network, optim


@dataclasses.dataclass(frozen=True)
class Static:
  """Everything that fixes shapes or code (one compile per distinct value)."""
  task: str = "classification"
  d: int = 256
  k_core: int = 32
  k_bg: int = 32
  core: str = "linear"
  core_radii: Tuple[float, float] = (1.0, 2.0)
  coeff_dist: str = "uniform"
  regime: str = "fixed"
  n_train: int = 1000
  n_eval: int = 4096
  width: int = 256            # rows of W: the (padded) width
  activations: Tuple[str, ...] = ("relu",)
  leaky_slope: float = 0.1
  init: str = "pytorch"
  bias: bool = False
  train_output: bool = False
  output_init: str = "signs"
  output_signs: str = "half"
  loss: str = "hinge"
  optimizer: str = "sgd"
  lr_schedule: str = "constant"
  warmup_steps: int = 0
  steps: int = 20000
  log_every: int = 1000
  batch: int = 0              # rows of a training batch (padded); 0 = full fixed set
  oracle_projection: bool = False
  path: str = "feature"       # resolved: "feature" or "input"
  return_params: bool = True

  @property
  def k(self):
    return self.k_core + self.k_bg

  @property
  def out_dim(self):
    return None if self.task == "classification" else self.k_core

  @property
  def n_logs(self):
    return self.steps // self.log_every


class Dynamic(NamedTuple):
  """Values that can vary inside one compiled group (each a scalar; ``vmap`` adds axes)."""
  seed: jax.Array
  lr: jax.Array
  weight_decay: jax.Array
  momentum: jax.Array
  b1: jax.Array
  b2: jax.Array
  eps: jax.Array
  init_scale: jax.Array
  shift: jax.Array
  width: jax.Array            # actual width <= Static.width
  batch_size: jax.Array       # actual batch <= Static.batch (ignored for full batch)
  act_index: jax.Array        # index into Static.activations


def from_config(c, return_params=True):
  """Splits a resolved config (see :mod:`featcon.config`) into ``(Static, Dynamic)``."""
  path = c.train.path
  if path == "auto":
    path = "feature" if optim.rotation_equivariant(c.train.optimizer) else "input"
  batch = c.train.batch_size
  if c.data.regime == "fixed" and batch in (0, c.data.n_train):
    batch = 0
  static = Static(
      task=c.data.task, d=c.data.d, k_core=c.data.k_core, k_bg=c.data.k_bg, core=c.data.core,
      core_radii=tuple(float(r) for r in c.data.core_radii), coeff_dist=c.data.coeff_dist,
      regime=c.data.regime, n_train=c.data.n_train, n_eval=c.data.n_eval,
      width=c.model.width, activations=(c.model.activation,),
      leaky_slope=float(c.model.leaky_slope), init=c.model.init, bias=c.model.bias,
      train_output=c.model.train_output, output_init=c.model.output_init,
      output_signs=c.model.output_signs, loss=c.train.loss, optimizer=c.train.optimizer,
      lr_schedule=c.train.lr_schedule, warmup_steps=c.train.warmup_steps,
      steps=c.train.steps, log_every=c.train.log_every, batch=batch,
      oracle_projection=c.train.oracle_projection, path=path, return_params=return_params)
  dyn = make_dynamic(
      seed=c.seed, lr=c.train.lr, weight_decay=c.train.weight_decay, momentum=c.train.momentum,
      b1=c.train.b1, b2=c.train.b2, eps=c.train.eps, init_scale=c.model.init_scale,
      shift=c.data.shift, width=c.model.width, batch_size=batch, act_index=0)
  return static, dyn


def make_dynamic(**kw):
  """A :class:`Dynamic` with the right dtypes (uint32 seed, int32 sizes, float32 the rest)."""
  ints = {"width", "batch_size", "act_index"}
  out = {}
  for f in Dynamic._fields:
    v = kw[f]
    if f == "seed":
      out[f] = jnp.asarray(np.asarray(v, np.uint32))
    elif f in ints:
      out[f] = jnp.asarray(v, jnp.int32)
    else:
      out[f] = jnp.asarray(v, jnp.float32)
  return Dynamic(**out)


class Problem(NamedTuple):
  """The sampled problem of one run: dictionary, data in network coordinates, initial params."""
  M: jax.Array                # (d, K) orthonormal dictionary
  basis: jax.Array            # (D, K): M (input path) or I_K (feature path); P = W @ basis
  train_x: Optional[jax.Array]  # fixed set inputs (n, D) or None (online)
  train_t: Optional[jax.Array]  # fixed set labels (n,) or regression targets (n, k_core)
  train_y: Optional[jax.Array]
  train_ood_x: Optional[jax.Array]
  eval_x: jax.Array           # (n_eval, D) fresh ID sample
  eval_ood_x: jax.Array       # (n_eval, D) same core, background shifted by s
  eval_t: jax.Array
  eval_y: jax.Array
  params0: dict               # initial params in network coordinates
  w0_input: jax.Array         # initial W in input space (m, d)


def _targets(static, batch):
  if static.task == "classification":
    return batch.y
  return batch.z[:, :static.k_core]


def _data_kwargs(static):
  return dict(k_core=static.k_core, k_bg=static.k_bg, core=static.core, dist=static.coeff_dist,
              radii=static.core_radii)


def run_keys(seed):
  """The key layout of a run (stable, for reproducibility): ``PRNGKey(seed)`` split into
  (dictionary, init, fixed training set, evaluation sets, per-step batches)."""
  return jax.random.split(jax.random.PRNGKey(seed), 5)


def make_problem(static, dyn):
  """Samples the dictionary, data sets and initial weights of a run from ``dyn.seed``
  (keys from :func:`run_keys`)."""
  k_dict, k_init, k_train, k_eval, _ = run_keys(dyn.seed)
  M = features.dictionary(k_dict, static.d, static.k)
  feature = static.path == "feature"
  basis = jnp.eye(static.k, dtype=jnp.float32) if feature else M
  to_net = (lambda z: z) if feature else (lambda z: z @ M.T)
  dkw = _data_kwargs(static)

  train_x = train_t = train_y = train_ood_x = None
  if static.regime == "fixed":
    ktr, ktro = jax.random.split(k_train)
    tr = features.sample(ktr, static.n_train, shift=0.0, balanced=True, **dkw)
    tro = features.shift_background(ktro, tr, k_core=static.k_core, shift=dyn.shift,
                                    dist=static.coeff_dist)
    train_x, train_t, train_y, train_ood_x = to_net(tr.z), _targets(static, tr), tr.y, to_net(tro.z)
  ke, keo = jax.random.split(k_eval)
  ev = features.sample(ke, static.n_eval, shift=0.0, **dkw)
  evo = features.shift_background(keo, ev, k_core=static.k_core, shift=dyn.shift,
                                  dist=static.coeff_dist)

  params = network.init(
      k_init, m=static.width, d_in=static.d, fan_in=static.d, out_dim=static.out_dim,
      width=dyn.width, init=static.init, init_scale=dyn.init_scale, bias=static.bias,
      output_init=static.output_init, output_signs=static.output_signs)
  w0 = params["W"]
  if feature:
    params = dict(params, W=w0 @ M)
  return Problem(M, basis, train_x, train_t, train_y, train_ood_x, to_net(ev.z), to_net(evo.z),
                 _targets(static, ev), ev.y, params, w0)


def _split_params(static, params):
  trainable = {k: v for k, v in params.items() if static.train_output or k in ("W", "b")}
  frozen = {k: v for k, v in params.items() if k not in trainable}
  return trainable, frozen


def make_train(static, on_log=None):
  """Returns ``train(dyn) -> (metrics, final)`` for one static group (not yet jitted).

  ``on_log``, if given, is called on the host with the log index after each log interval
  (``jax.debug.callback``; once per interval even under ``vmap``) to drive a progress bar.

  ``metrics`` is a dict of arrays over the ``n_logs + 1`` log steps (see
  :func:`featcon.metrics.measure`, plus ``train_loss``, the mean training loss over the
  preceding interval); ``final`` holds ``diverged_step`` (-1 if finite throughout) and, when
  ``static.return_params``, the final params in input coordinates (``W`` is rebuilt from
  ``P`` and the decayed orthogonal part on the feature path).
  """
  sigma = network.switch_activation(static.activations, static.leaky_slope)
  loss_fn = losses.loss_fn(static.loss)
  feature = static.path == "feature"

  def train(dyn):
    prob = make_problem(static, dyn)
    mask = (jnp.arange(static.width) < dyn.width).astype(jnp.float32)
    act = lambda u: sigma(u, dyn.act_index)
    opt = optim.make(static.optimizer, lr=dyn.lr, weight_decay=dyn.weight_decay,
                     momentum=dyn.momentum, b1=dyn.b1, b2=dyn.b2, eps=dyn.eps,
                     schedule_kind=static.lr_schedule, steps=static.steps,
                     warmup_steps=static.warmup_steps)
    lr_fn = optim.schedule(static.lr_schedule, dyn.lr, static.steps, static.warmup_steps)
    trainable, frozen = _split_params(static, prob.params0)
    core_proj = None
    if static.oracle_projection:
      core_basis = prob.basis[:, :static.k_core]
      core_proj = core_basis @ core_basis.T
    k_steps = run_keys(dyn.seed)[4]
    dkw = _data_kwargs(static)

    def get_batch(t):
      kt = jax.random.fold_in(k_steps, t)
      if static.regime == "online":
        b = features.sample(kt, static.batch, shift=0.0, **dkw)
        x = b.z if feature else b.z @ prob.M.T
        w = (jnp.arange(static.batch) < dyn.batch_size).astype(jnp.float32)
        return x, _targets(static, b), w
      if static.batch == 0:
        return prob.train_x, prob.train_t, jnp.ones((static.n_train,), jnp.float32)
      idx = jax.random.randint(kt, (static.batch,), 0, static.n_train)
      w = (jnp.arange(static.batch) < dyn.batch_size).astype(jnp.float32)
      return prob.train_x[idx], prob.train_t[idx], w

    def batch_loss(tr, x, t, w):
      f = network.apply({**tr, **frozen}, x, act, mask)
      return jnp.sum(w * loss_fn(f, t)) / jnp.sum(w)

    grad_fn = jax.value_and_grad(batch_loss)

    def step(carry, t):
      tr, opt_state, perp, diverged, loss_sum = carry
      x, tgt, w = get_batch(t)
      loss, grads = grad_fn(tr, x, tgt, w)
      updates, new_opt_state = opt.update(grads, opt_state, tr)
      if core_proj is not None:
        updates = dict(updates, W=updates["W"] @ core_proj)
      new_tr = optax.apply_updates(tr, updates)
      alpha, beta = perp
      if feature:
        beta = dyn.weight_decay * alpha + dyn.momentum * beta
        if core_proj is None:
          alpha = alpha - (lr_fn(t) if callable(lr_fn) else lr_fn) * beta
      ok = jnp.isfinite(loss) & (diverged < 0)
      diverged = jnp.where((diverged < 0) & ~jnp.isfinite(loss), t, diverged)
      keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
      carry = (keep(new_tr, tr), keep(new_opt_state, opt_state),
               keep((alpha, beta), perp), diverged, loss_sum + jnp.where(ok, loss, 0.0))
      return carry, None

    def measure(tr):
      return metrics_lib.measure(static, prob, {**tr, **frozen}, act, mask)

    def log_interval(carry, i):
      t0 = i * static.log_every
      carry = carry[:4] + (jnp.float32(0.0),)
      carry, _ = jax.lax.scan(step, carry, t0 + jnp.arange(static.log_every))
      m = measure(carry[0])
      m["train_loss"] = carry[4] / static.log_every
      if on_log is not None:
        jax.debug.callback(on_log, i)
      return carry, m

    m0 = measure(trainable)
    m0["train_loss"] = jnp.float32(jnp.nan)
    perp0 = (jnp.float32(1.0), jnp.float32(0.0))
    carry0 = (trainable, opt.init(trainable), perp0, jnp.int32(-1), jnp.float32(0.0))
    carry, ms = jax.lax.scan(log_interval, carry0, jnp.arange(static.n_logs))
    out = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0), m0, ms)
    out["step"] = jnp.arange(static.n_logs + 1, dtype=jnp.int32) * static.log_every
    final = {"diverged_step": carry[3], "perp_scale": carry[2][0]}
    if static.return_params:
      params = {**carry[0], **frozen}
      if feature:
        w0 = prob.w0_input
        w_perp0 = w0 - (w0 @ prob.M) @ prob.M.T
        params = dict(params, W=params["W"] @ prob.M.T + carry[2][0] * w_perp0)
      final["params"] = params
    return out, final

  return train
