"""Training as one jit-compiled ``lax.scan`` with in-scan measurements (docs/theory.md, "Training").

The run is split into what changes compiled code or shapes
(:class:`featcon.theory.program.Static`, hashable) and what only changes values
(:class:`featcon.theory.program.Dynamic`, a pytree of scalars). ``make_train(static)``
returns a pure function ``train(dynamic) -> (metrics, final)`` that ``jit``/``vmap`` compose
with, as in purejaxrl: the sweep engine ``vmap``s it over seeds, learning rates, weight
decays, init scales, shift strengths, widths (padded and masked), batch sizes (padded and
weighted) and activations (``lax.switch``).

Two exact paths (docs/theory.md, "Exact feature-coordinate dynamics"):

* ``input``: the network sees ``x = M z`` in R^d; any optimizer.
* ``feature``: for rotation-equivariant optimizers (SGD with coupled decay, with or without
  momentum) ``dL/dW = (dL/dP) M^T``, so ``P = W M`` follows closed dynamics with inputs
  ``z`` in R^K, and the part of ``W`` orthogonal to span(M) only scales: with momentum,
  ``W_perp(t) = alpha_t W_perp(0)`` where ``beta_{t+1} = lambda alpha_t + mu beta_t``,
  ``alpha_{t+1} = alpha_t - eta_t beta_{t+1}``. ``path="auto"`` picks it whenever it is exact.
"""
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from featcon.theory import features, losses, metrics as metrics_lib, network, optim


class Problem(NamedTuple):
  """The sampled problem of one run: dictionary, data in network coordinates, initial params."""
  M: jax.Array                # (d, K) orthonormal dictionary
  basis: jax.Array            # (D, K): M (input path) or I_K (feature path); P = W @ basis
  train_x: Optional[jax.Array]  # fixed set inputs (n, D) or None (online)
  train_t: Optional[jax.Array]  # fixed set labels (n,) or regression targets (n, k_core)
  train_y: Optional[jax.Array]
  train_ood_x: Optional[jax.Array]  # (n, D), or (S, n, D) for a vector of S shifts
  eval_x: jax.Array           # (n_eval, D) fresh ID sample
  eval_ood_x: jax.Array       # (n_eval, D) same core, background shifted by s; (S, n_eval, D)
  eval_t: jax.Array
  eval_y: jax.Array
  params0: dict               # initial params in network coordinates
  w0_input: jax.Array         # initial W in input space (m, d)


def _targets(static, batch):
  if static.task == "classification":
    return batch.y
  return batch.z[:, :static.k_core]


def _data_kwargs(static, dyn):
  return dict(k_core=static.k_core, k_bg=static.k_bg, core=static.core, dist=static.coeff_dist,
              radii=static.core_radii, rho=dyn.bg_label_corr, k_spurious=static.k_spurious)


def run_keys(seed):
  """The key layout of a run (stable, for reproducibility): ``PRNGKey(seed)`` split into
  (dictionary, init, fixed training set, evaluation sets, per-step batches)."""
  return jax.random.split(jax.random.PRNGKey(seed), 5)


def run_dictionary(static, seed):
  """The run's dictionary ``M`` (d, K) from its seed (the first key of :func:`run_keys`)."""
  return features.dictionary(run_keys(seed)[0], static.d, static.k)


def _shift_background(static, key, batch, shift, rho):
  """The OOD counterpart of ``batch`` (:func:`featcon.theory.features.shift_background`) for one
  shift, or for each of a vector of ``static.n_shifts`` shifts (stacked on a leading axis): every
  shift subtracts its strength from the same background draws, so each slice equals the
  one-shift sample."""
  one = lambda s: features.shift_background(key, batch, k_core=static.k_core, shift=s,
                                            dist=static.coeff_dist, rho=rho,
                                            k_spurious=static.k_spurious)
  return jax.vmap(one)(shift) if static.n_shifts else one(shift)


def make_problem(static, dyn, M=None):
  """Samples the dictionary, data sets and initial weights of a run from ``dyn.seed``
  (keys from :func:`run_keys`); ``M``, if given, is the run's dictionary computed beforehand
  with :func:`run_dictionary` (the same numbers). With ``static.n_shifts``, the OOD sets are
  stacked over the shift vector ``dyn.shift``."""
  _, k_init, k_train, k_eval, _ = run_keys(dyn.seed)  # the first key is run_dictionary's
  M = run_dictionary(static, dyn.seed) if M is None else M
  feature = static.path == "feature"
  basis = jnp.eye(static.k, dtype=jnp.float32) if feature else M
  to_net = (lambda z: z) if feature else (lambda z: z @ M.T)
  dkw = _data_kwargs(static, dyn)

  train_x = train_t = train_y = train_ood_x = None
  if static.regime == "fixed":
    ktr, ktro = jax.random.split(k_train)
    tr = features.sample(ktr, static.n_train, shift=0.0, balanced=True, **dkw)
    tro = _shift_background(static, ktro, tr, dyn.shift, dyn.bg_label_corr)
    train_x, train_t, train_y, train_ood_x = to_net(tr.z), _targets(static, tr), tr.y, to_net(tro.z)
  ke, keo = jax.random.split(k_eval)
  ev = features.sample(ke, static.n_eval, shift=0.0, **dkw)
  evo = _shift_background(static, keo, ev, dyn.shift, dyn.bg_label_corr)

  params = network.init(
      k_init, m=static.width, d_in=static.d, fan_in=static.d, out_dim=static.out_dim,
      width=dyn.width, init=static.init, init_scale=dyn.init_scale, bias=static.bias,
      output_init=static.output_init, output_signs=static.output_signs,
      output_bias_init=static.output_bias_init, depth=static.depth)
  w0 = params["W"]
  if feature:
    params = dict(params, W=w0 @ M)
  return Problem(M, basis, train_x, train_t, train_y, train_ood_x, to_net(ev.z), to_net(evo.z),
                 _targets(static, ev), ev.y, params, w0)


class Perp(NamedTuple):
  """The scalar recursion of the part of ``W`` the updates never touch (module docstring):
  ``W_perp(t) = alpha_t W_perp(0)``, ``beta`` its momentum buffer."""
  alpha: jax.Array
  beta: jax.Array


class Carry(NamedTuple):
  """The state the training scan carries from step to step."""
  params: dict          # the trained params (``Dense``-kernel layout), or ``{"Q"}`` (linear)
  opt_state: Any        # the optax state
  perp: Perp
  diverged: jax.Array   # the first step with a non-finite loss, or -1
  loss_sum: jax.Array   # the summed training loss of the current log interval


def _split_params(static, params):
  trainable = {k: v for k, v in params.items()
               if (k in ("a", "c") and static.train_output)
               or network.hidden_trainable(k, static.train_layers)}
  frozen = {k: v for k, v in params.items() if k not in trainable}
  return trainable, frozen


def make_train(static, on_log=None):
  """Returns ``train(dyn) -> (metrics, final)`` for one static group (not yet jitted): the
  three stages of :func:`make_stages` in one program.

  ``on_log``, if given, is called on the host with the log index after each log interval
  (``jax.debug.callback``; once per interval even under ``vmap``) to drive a progress bar.

  ``metrics`` is a dict of arrays over the ``n_logs + 1`` log steps (see
  :func:`featcon.theory.metrics.measure`, plus ``train_loss``, the mean training loss over the
  preceding interval); ``final`` holds ``diverged_step`` (-1 if finite throughout) and, when
  ``static.return_params``, the final params in input coordinates (``W`` is rebuilt from
  ``P`` and the decayed orthogonal part on the feature path; after a divergence, the params
  of the last log step before it).

  The weights are carried in the ``Dense``-kernel layout (:func:`featcon.theory.network.to_kernel`);
  with ``static.linear`` the carried state is ``Q`` of :func:`linear_eligible` instead.
  """
  stages = make_stages(static, on_log)

  def train(dyn, M=None):
    ctx, carry = stages.start(dyn, M)
    carry, out = stages.advance(dyn, ctx, carry, jnp.arange(static.n_logs + 1))
    out["step"] = log_steps(static)
    return out, stages.finish(dyn, ctx, carry)

  return train


def log_steps(static):
  """The training step of each log step, ``0, log_every, ..., steps`` (int32)."""
  return jnp.arange(static.n_logs + 1, dtype=jnp.int32) * static.log_every


class Stages(NamedTuple):
  """A training run as three pure functions (:func:`make_stages`), each ``jit``/``vmap``-able
  on its own, so that a host loop can advance the log scan a few log steps per call."""
  start: Any    # (dyn, M=None) -> (ctx, carry): the sampled problem and the initial state
  advance: Any  # (dyn, ctx, carry, idx) -> (carry, metrics): the log steps idx (unbatched)
  finish: Any   # (dyn, ctx, carry) -> final


def make_stages(static, on_log=None, weight_rows=False):
  """The stages of :func:`make_train`'s program (:class:`Stages`).

  ``start`` samples the problem (:func:`make_problem`) and the arrays derived from it once per
  run (``ctx``) and builds the initial :class:`Carry`; ``advance`` runs the log steps ``idx``
  (a vector of consecutive log indices, the same for every configuration): log step 0
  measures the initial network, log step ``i`` in 1 ... ``n_logs`` trains the ``i``-th
  interval of ``log_every`` steps and measures, an index above ``n_logs`` (padding of a last,
  shorter call) neither trains nor changes the carry; ``finish`` returns ``final``
  (:func:`make_train`). ``advance`` over ``idx = 0 ... n_logs`` in one call, or over
  consecutive pieces of it in several calls, computes the same numbers: the carry and the
  context are all the state there is. ``on_log`` as for :func:`make_train` (a host callback
  in ``advance``; a program with one is not stored by JAX's persistent compilation cache).

  ``weight_rows`` carries the first layer as ``W`` (m, D) instead of the ``Dense``-kernel
  layout: stacked over configurations that share a batch, ``[W_1; ...; W_L]`` (L m, D) is
  then the operand of one wide matmul as it lies in memory (the layout of
  :func:`featcon.theory.runner.shared_advance`; the kernel layout would be transposed every
  step). Same dynamics, equal to float rounding.
  """
  sigma = network.switch_activation(static.activations, static.leaky_slope)
  loss_fn = losses.loss_fn(static.loss)
  feature = static.path == "feature"

  def context(dyn, M):
    """The problem and what the run derives from it before training (linear shortcut's
    ``A``, ``A^T A``, ``A^T [W_0 | b_0]``; the oracle projection)."""
    prob = make_problem(static, dyn, M)
    mask = (jnp.arange(static.width) < dyn.width).astype(jnp.float32)
    ctx = {"prob": prob}
    _, frozen = _split_params(static, network.to_kernel(prob.params0))
    if static.linear:
      # [W_t | b_t] = alpha_t [W_0 | b_0] + A Q_t (linear_eligible): train Q from zero.
      amat = frozen["a"].reshape(static.width, -1) * mask[:, None]   # A (m, o), masked rows 0
      ctx["gram"] = amat.T @ amat                                      # A^T A (o, o)
      w0aug = prob.params0["W"]
      if static.bias:
        w0aug = jnp.concatenate([w0aug, prob.params0["b"][:, None]], axis=1)
      ctx["w0aug"] = w0aug
      ctx["y0"] = amat.T @ w0aug                           # A^T [W_0 | b_0] (o, D [+ 1])
    if static.oracle_projection:
      core_basis = prob.basis[:, :static.k_core]
      ctx["core_proj"] = core_basis @ core_basis.T
    return ctx

  def build(dyn, ctx):
    """The run's step, measurement and log-step functions over ``ctx``."""
    prob = ctx["prob"]
    if feature:  # an unbatched constant, as in make_problem (start does not return it)
      prob = prob._replace(basis=jnp.eye(static.k, dtype=jnp.float32))
    mask = (jnp.arange(static.width) < dyn.width).astype(jnp.float32)
    act = lambda u: sigma(u, dyn.act_index)
    opt = optim.make(static.optimizer, lr=dyn.lr, weight_decay=dyn.weight_decay,
                     momentum=dyn.momentum, b1=dyn.b1, b2=dyn.b2, eps=dyn.eps,
                     schedule_kind=static.lr_schedule, steps=static.steps,
                     warmup_steps=static.warmup_steps, use_momentum=static.use_momentum)
    step_mask = mask if static.masked else None
    lr_fn = optim.schedule(static.lr_schedule, dyn.lr, static.steps, static.warmup_steps)
    # start's ctx holds no initial W: the carry has it (make_train's one program, too, only
    # keeps the kernel layout alive, so XLA computes it the same way in both).
    kernel = prob.params0
    if "W" in prob.params0 and not weight_rows:
      kernel = network.to_kernel(prob.params0)
    trainable, frozen = _split_params(static, kernel)
    if static.linear:
      amat = frozen["a"].reshape(static.width, -1) * mask[:, None]   # A (m, o), masked rows 0
      gram, w0aug, y0 = ctx["gram"], ctx["w0aug"], ctx["y0"]
      trainable = {"Q": jnp.zeros_like(y0)}
    core_proj = ctx.get("core_proj")
    k_steps = run_keys(dyn.seed)[4]
    dkw = _data_kwargs(static, dyn)

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

    def mean_loss(f, t, w):
      """The batch loss: the mean over the rows of a batch (weights w mark padded rows)."""
      if not static.batch_padded:
        return jnp.mean(loss_fn(f, t))
      return jnp.sum(w * loss_fn(f, t)) / jnp.sum(w)

    def batch_loss(tr, x, t, w):
      return mean_loss(network.apply({**tr, **frozen}, x, act, step_mask), t, w)

    grad_fn = jax.value_and_grad(batch_loss)

    def linear_loss(y, x, t, w):
      """The same loss for the linear model ``f(x) = Y [x | 1] + c`` (linear_eligible)."""
      if static.bias:
        f = x @ y[:, :-1].T + y[:, -1] + frozen["c"]
      else:
        f = x @ y.T
      return mean_loss(f[:, 0] if static.out_dim is None else f, t, w)

    linear_grad_fn = jax.value_and_grad(linear_loss)

    def net_params(tr, alpha):
      """The network's params (``W`` layout, network coordinates) from the carried state."""
      if static.linear:
        waug = alpha * w0aug + amat @ tr["Q"]
        if static.bias:
          return {"W": waug[:, :-1], "b": waug[:, -1], **frozen}
        return {"W": waug, **frozen}
      return network.from_kernel({**tr, **frozen})

    def step(carry, t):
      tr, opt_state, perp, diverged, loss_sum = carry
      x, tgt, w = get_batch(t)
      if static.linear:
        loss, v = linear_grad_fn(perp.alpha * y0 + gram @ tr["Q"], x, tgt, w)
        grads = {"Q": v}
      else:
        loss, grads = grad_fn(tr, x, tgt, w)
      updates, new_opt_state = opt.update(grads, opt_state, tr)
      if core_proj is not None and "Wt" in updates:
        updates = dict(updates, Wt=core_proj @ updates["Wt"])  # = (W_update @ core_proj)^T
      elif core_proj is not None:
        updates = dict(updates, W=updates["W"] @ core_proj)
      new_tr = optax.apply_updates(tr, updates)
      alpha, beta = perp
      if feature or static.linear:
        beta = dyn.weight_decay * alpha + dyn.momentum * beta
        if core_proj is None:
          alpha = alpha - (lr_fn(t) if callable(lr_fn) else lr_fn) * beta
      ok = jnp.isfinite(loss) & (diverged < 0)
      diverged = jnp.where((diverged < 0) & ~jnp.isfinite(loss), t, diverged)
      # No per-step select over the weights: log_interval rolls a diverged interval back.
      carry = Carry(new_tr, new_opt_state, Perp(alpha, beta), diverged,
                    loss_sum + jnp.where(ok, loss, 0.0))
      return carry, None

    def measure(tr, alpha):
      return metrics_lib.measure(static, prob, net_params(tr, alpha), act, mask)

    def train_interval(carry_in, i):
      """``log_every`` steps from step ``(i - 1) * log_every``; the carry gains the interval's
      summed training loss."""
      t0 = (i - 1) * static.log_every
      carry, _ = jax.lax.scan(step, carry_in._replace(loss_sum=jnp.float32(0.0)),
                              t0 + jnp.arange(static.log_every))
      # Divergence: once a step's loss is not finite, the run keeps the state it had at the
      # last log step before that step (its metrics are NaN from there on, see
      # simulation.finalize); one select per interval instead of one per step.
      stop = carry.diverged >= 0
      keep = lambda a, b: jnp.where(stop, a, b)
      carry = carry._replace(params=jax.tree.map(keep, carry_in.params, carry.params),
                             opt_state=jax.tree.map(keep, carry_in.opt_state, carry.opt_state),
                             perp=jax.tree.map(keep, carry_in.perp, carry.perp))
      if on_log is not None:
        jax.debug.callback(on_log, i)
      return carry

    def log_interval(carry_in, i):
      # Log step 0 measures the initial network (no training, train_loss NaN); log step i > 0
      # follows the i-th interval. One program for both keeps a single copy of the
      # measurements in the compiled program (a second copy for step 0 cost ~10 % of the
      # compile time).
      # An index above n_logs pads a last call of ``advance``: nothing trains.
      carry = jax.lax.cond((i > 0) & (i <= static.n_logs), train_interval,
                           lambda c, _: c._replace(loss_sum=jnp.float32(jnp.nan)), carry_in, i)
      m = measure(carry.params, carry.perp.alpha)
      m["train_loss"] = carry.loss_sum / static.log_every
      return carry, m

    perp0 = Perp(jnp.float32(1.0), jnp.float32(0.0))
    carry0 = Carry(trainable, opt.init(trainable), perp0, jnp.int32(-1), jnp.float32(0.0))

    def finish(carry):
      final = {"diverged_step": carry.diverged, "perp_scale": carry.perp.alpha}
      if static.return_params:
        params = net_params(carry.params, carry.perp.alpha)
        if feature:
          w0 = prob.w0_input
          w_perp0 = w0 - (w0 @ prob.M) @ prob.M.T
          params = dict(params, W=params["W"] @ prob.M.T + carry.perp.alpha * w_perp0)
        final["params"] = params
      return final

    return carry0, log_interval, finish

  def start(dyn, M=None):
    ctx = context(dyn, M)
    carry0 = build(dyn, ctx)[0]
    prob = ctx["prob"]
    params0 = {k: v for k, v in prob.params0.items() if k != "W"}
    ctx = dict(ctx, prob=prob._replace(params0=params0, basis=None if feature else prob.basis))
    return ctx, carry0

  def advance(dyn, ctx, carry, idx):
    return jax.lax.scan(build(dyn, ctx)[1], carry, idx)

  def finish(dyn, ctx, carry):
    return build(dyn, ctx)[2](carry)

  return Stages(start, advance, finish)
