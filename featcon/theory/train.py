"""Training as one jit-compiled ``lax.scan`` with in-scan measurements (docs/theory.md, "Training").

The run is split into what changes compiled code or shapes (:class:`Static`, hashable) and
what only changes values (:class:`Dynamic`, a pytree of scalars). ``make_train(static)``
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
import dataclasses
import os
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from featcon.theory import features, losses, metrics as metrics_lib, network, optim


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
  output_bias_init: str = "pytorch"
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
  # Whether the group needs the general machinery (each False is an exact shortcut that drops
  # per-step passes over the stacked weights; make_groups sets them from the group's members):
  use_momentum: bool = True   # some config has momentum != 0 (else no optax.trace state)
  masked: bool = True         # some config is narrower than ``width`` (else no neuron mask)
  batch_padded: bool = True   # some config's batch is smaller than ``batch`` (else a plain mean)
  linear: bool = False        # the rank-one linear-network shortcut (see :func:`linear_eligible`)
  # 0: ``Dynamic.shift`` is one shift strength. S > 0: a vector of S strengths measured on one
  # training (training never sees the OOD sets, so runs that differ only in the shift share it;
  # the shift-dependent metrics of :data:`featcon.theory.metrics.SHIFT_KEYS` gain an S axis).
  n_shifts: int = 0

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
  shift: jax.Array            # a scalar, or (Static.n_shifts,) strengths of the OOD sets
  width: jax.Array            # actual width <= Static.width
  batch_size: jax.Array       # actual batch <= Static.batch (ignored for full batch)
  act_index: jax.Array        # index into Static.activations


def from_config(c, return_params=True):
  """Splits a resolved config (see :mod:`featcon.theory.config`) into ``(Static, Dynamic)``."""
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
      output_signs=c.model.output_signs, output_bias_init=c.model.output_bias_init,
      loss=c.train.loss, optimizer=c.train.optimizer,
      lr_schedule=c.train.lr_schedule, warmup_steps=c.train.warmup_steps,
      steps=c.train.steps, log_every=c.train.log_every, batch=batch,
      oracle_projection=c.train.oracle_projection, path=path, return_params=return_params,
      use_momentum=uses_momentum(c.train.optimizer, c.train.momentum), masked=False,
      batch_padded=False)
  static = dataclasses.replace(static, linear=c.train.linear_shortcut and linear_eligible(static))
  dyn = make_dynamic(
      seed=c.seed, lr=c.train.lr, weight_decay=c.train.weight_decay, momentum=c.train.momentum,
      b1=c.train.b1, b2=c.train.b2, eps=c.train.eps, init_scale=c.model.init_scale,
      shift=c.data.shift, width=c.model.width, batch_size=batch, act_index=0)
  return static, dyn


def linear_eligible(static):
  """Whether a run is a linear network whose SGD dynamics stay rank-one around the init.

  With the identity activation, a frozen output ``A`` (m, o) (``a`` as (m, 1) for a scalar
  output), SGD with coupled decay (with or without momentum) and no oracle projection, the
  weight gradient is ``dL/dW = A V`` with ``V = dL/dY`` for the linear model
  ``f(x) = Y x``, ``Y = A^T W`` (o, D). Then, exactly (Theorem 4.4's setting),

      W_t = alpha_t W_0 + A Q_t,     (momentum buffer: beta_t W_0 + A R_t)

  where ``Q`` (o, D) follows the same optax SGD update with gradient ``V`` as ``W`` would,
  and ``alpha_t`` the scalar recursion of the orthogonal part (``beta <- lambda alpha + mu beta``,
  ``alpha <- alpha - eta_t beta``). A step then costs O(n D o) instead of O(n D m).

  With biases (a trained hidden bias ``b``, a frozen output bias ``c``) the same holds for the
  augmented weights ``[W | b]`` on inputs ``[x | 1]``: ``f(x) = Y [x | 1] + c`` with
  ``Y = A^T [W | b]`` (o, D + 1), ``dL/db = A V_b``, and ``b`` decays and carries momentum as
  ``W`` does, so ``[W_t | b_t] = alpha_t [W_0 | b_0] + A Q_t`` with ``Q`` (o, D + 1).
  """
  return (static.activations == ("identity",) and not static.train_output
          and static.optimizer == "sgd" and not static.oracle_projection)


def uses_momentum(optimizer, momentum):
  """Whether a run needs the SGD momentum trace (``optax.trace`` with decay 0 is the identity)."""
  return optimizer == "sgd" and float(momentum) != 0.0


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


def _data_kwargs(static):
  return dict(k_core=static.k_core, k_bg=static.k_bg, core=static.core, dist=static.coeff_dist,
              radii=static.core_radii)


OPT_LEVEL_ENV = "FEATCON_THEORY_XLA_OPT_LEVEL"


def compiler_options():
  """XLA compiler options of the theory programs (:func:`featcon.simulate` and each sweep group).

  ``$FEATCON_THEORY_XLA_OPT_LEVEL`` (0, 1, 2 or 3), if set, is XLA's backend (LLVM)
  optimisation level for them; unset, XLA's own default applies. A lower level compiles faster
  and runs slower, which pays only for programs that run briefly, such as the test suite's (it
  sets 0; ``docs/testing.md``). Semantics do not change; float32 results may differ in the last
  bits. A bad value raises ``ValueError`` before anything is compiled.
  """
  level = os.environ.get(OPT_LEVEL_ENV)
  if level is None or level == "":
    return None
  if level.strip() not in ("0", "1", "2", "3"):
    raise ValueError(f"{OPT_LEVEL_ENV}={level!r}; allowed: 0, 1, 2, 3 (XLA's backend "
                     "optimisation level) or unset (XLA's default)")
  return {"xla_backend_optimization_level": int(level)}


def run_keys(seed):
  """The key layout of a run (stable, for reproducibility): ``PRNGKey(seed)`` split into
  (dictionary, init, fixed training set, evaluation sets, per-step batches)."""
  return jax.random.split(jax.random.PRNGKey(seed), 5)


def run_dictionary(static, seed):
  """The run's dictionary ``M`` (d, K) from its seed (the first key of :func:`run_keys`)."""
  return features.dictionary(run_keys(seed)[0], static.d, static.k)


def _shift_background(static, key, batch, shift):
  """The OOD counterpart of ``batch`` (:func:`featcon.theory.features.shift_background`) for one
  shift, or for each of a vector of ``static.n_shifts`` shifts (stacked on a leading axis): every
  shift subtracts its strength from the same background draws, so each slice equals the
  one-shift sample."""
  one = lambda s: features.shift_background(key, batch, k_core=static.k_core, shift=s,
                                            dist=static.coeff_dist)
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
  dkw = _data_kwargs(static)

  train_x = train_t = train_y = train_ood_x = None
  if static.regime == "fixed":
    ktr, ktro = jax.random.split(k_train)
    tr = features.sample(ktr, static.n_train, shift=0.0, balanced=True, **dkw)
    tro = _shift_background(static, ktro, tr, dyn.shift)
    train_x, train_t, train_y, train_ood_x = to_net(tr.z), _targets(static, tr), tr.y, to_net(tro.z)
  ke, keo = jax.random.split(k_eval)
  ev = features.sample(ke, static.n_eval, shift=0.0, **dkw)
  evo = _shift_background(static, keo, ev, dyn.shift)

  params = network.init(
      k_init, m=static.width, d_in=static.d, fan_in=static.d, out_dim=static.out_dim,
      width=dyn.width, init=static.init, init_scale=dyn.init_scale, bias=static.bias,
      output_init=static.output_init, output_signs=static.output_signs,
      output_bias_init=static.output_bias_init)
  w0 = params["W"]
  if feature:
    params = dict(params, W=w0 @ M)
  return Problem(M, basis, train_x, train_t, train_y, train_ood_x, to_net(ev.z), to_net(evo.z),
                 _targets(static, ev), ev.y, params, w0)


def _split_params(static, params):
  trainable = {k: v for k, v in params.items() if static.train_output or k in ("W", "Wt", "b")}
  frozen = {k: v for k, v in params.items() if k not in trainable}
  return trainable, frozen


def make_train(static, on_log=None):
  """Returns ``train(dyn) -> (metrics, final)`` for one static group (not yet jitted).

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
  sigma = network.switch_activation(static.activations, static.leaky_slope)
  loss_fn = losses.loss_fn(static.loss)
  feature = static.path == "feature"

  def train(dyn, M=None):
    prob = make_problem(static, dyn, M)
    mask = (jnp.arange(static.width) < dyn.width).astype(jnp.float32)
    act = lambda u: sigma(u, dyn.act_index)
    opt = optim.make(static.optimizer, lr=dyn.lr, weight_decay=dyn.weight_decay,
                     momentum=dyn.momentum, b1=dyn.b1, b2=dyn.b2, eps=dyn.eps,
                     schedule_kind=static.lr_schedule, steps=static.steps,
                     warmup_steps=static.warmup_steps, use_momentum=static.use_momentum)
    step_mask = mask if static.masked else None
    lr_fn = optim.schedule(static.lr_schedule, dyn.lr, static.steps, static.warmup_steps)
    trainable, frozen = _split_params(static, network.to_kernel(prob.params0))
    if static.linear:
      # [W_t | b_t] = alpha_t [W_0 | b_0] + A Q_t (linear_eligible): train Q from zero.
      amat = frozen["a"].reshape(static.width, -1) * mask[:, None]   # A (m, o), masked rows 0
      gram = amat.T @ amat                                             # A^T A (o, o)
      w0aug = prob.params0["W"]
      if static.bias:
        w0aug = jnp.concatenate([w0aug, prob.params0["b"][:, None]], axis=1)
      y0 = amat.T @ w0aug                                  # A^T [W_0 | b_0] (o, D [+ 1])
      trainable = {"Q": jnp.zeros_like(y0)}
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
        loss, v = linear_grad_fn(perp[0] * y0 + gram @ tr["Q"], x, tgt, w)
        grads = {"Q": v}
      else:
        loss, grads = grad_fn(tr, x, tgt, w)
      updates, new_opt_state = opt.update(grads, opt_state, tr)
      if core_proj is not None:
        updates = dict(updates, Wt=core_proj @ updates["Wt"])  # = (W_update @ core_proj)^T
      new_tr = optax.apply_updates(tr, updates)
      alpha, beta = perp
      if feature or static.linear:
        beta = dyn.weight_decay * alpha + dyn.momentum * beta
        if core_proj is None:
          alpha = alpha - (lr_fn(t) if callable(lr_fn) else lr_fn) * beta
      ok = jnp.isfinite(loss) & (diverged < 0)
      diverged = jnp.where((diverged < 0) & ~jnp.isfinite(loss), t, diverged)
      # No per-step select over the weights: log_interval rolls a diverged interval back.
      carry = (new_tr, new_opt_state, (alpha, beta), diverged,
               loss_sum + jnp.where(ok, loss, 0.0))
      return carry, None

    def measure(tr, alpha):
      return metrics_lib.measure(static, prob, net_params(tr, alpha), act, mask)

    def train_interval(carry_in, i):
      """``log_every`` steps from step ``(i - 1) * log_every``; the carry gains the interval's
      summed training loss."""
      t0 = (i - 1) * static.log_every
      carry, _ = jax.lax.scan(step, carry_in[:4] + (jnp.float32(0.0),),
                              t0 + jnp.arange(static.log_every))
      # Divergence: once a step's loss is not finite, the run keeps the state it had at the
      # last log step before that step (its metrics are NaN from there on, see
      # simulation.finalize); one select per interval instead of one per step.
      stop = carry[3] >= 0
      carry = jax.tree.map(lambda a, b: jnp.where(stop, a, b), carry_in[:3], carry[:3]) + carry[3:]
      if on_log is not None:
        jax.debug.callback(on_log, i)
      return carry

    def log_interval(carry_in, i):
      # Log step 0 measures the initial network (no training, train_loss NaN); log step i > 0
      # follows the i-th interval. One program for both keeps a single copy of the
      # measurements in the compiled program (a second copy for step 0 cost ~10 % of the
      # compile time).
      carry = jax.lax.cond(i > 0, train_interval,
                           lambda c, _: c[:4] + (jnp.float32(jnp.nan),), carry_in, i)
      m = measure(carry[0], carry[2][0])
      m["train_loss"] = carry[4] / static.log_every
      return carry, m

    perp0 = (jnp.float32(1.0), jnp.float32(0.0))
    carry0 = (trainable, opt.init(trainable), perp0, jnp.int32(-1), jnp.float32(0.0))
    carry, out = jax.lax.scan(log_interval, carry0, jnp.arange(static.n_logs + 1))
    out["step"] = jnp.arange(static.n_logs + 1, dtype=jnp.int32) * static.log_every
    final = {"diverged_step": carry[3], "perp_scale": carry[2][0]}
    if static.return_params:
      params = net_params(carry[0], carry[2][0])
      if feature:
        w0 = prob.w0_input
        w_perp0 = w0 - (w0 @ prob.M) @ prob.M.T
        params = dict(params, W=params["W"] @ prob.M.T + carry[2][0] * w_perp0)
      final["params"] = params
    return out, final

  return train


def bytes_per_config(static):
  """A conservative estimate of the device memory (bytes) one configuration needs: one
  :func:`make_train` program, or one configuration of a vmapped sweep group."""
  dim = static.k if static.path == "feature" else static.d
  out = static.out_dim or 1
  rows_train = static.n_train if static.regime == "fixed" else 0
  batch = static.batch or static.n_train
  sets = 1 + max(1, static.n_shifts)                        # ID set and one OOD set per shift
  floats = (
      static.d * static.k                                   # dictionary
      + sets * static.n_eval * (dim + static.width + out)   # eval sets, pre-activations
      + sets * rows_train * (dim + out)                     # fixed set and its OOD copies
      + 4 * batch * (dim + 2 * static.width + out)          # a step's activations and grads
      + 4 * static.width * (dim + out + 1)                  # params, grads, optimizer state
      + 2 * static.width * static.d                         # init in input space
      + (static.n_logs + 1) * (2 * static.width + 32)       # recorded metrics
  )
  # float32; x4 for XLA temporaries and layout copies. Calibrated on the online workload
  # (benchmarks/scaling.py): the formula alone gives 13.9 MB/config at width 512 where the
  # measured peak RSS grows by 23.9 MB/config, so a factor 2 over-filled the budget.
  return 4 * floats * 4


def check_memory(static, budget_gb, field):
  """Refuses a configuration whose estimated device memory (:func:`bytes_per_config`) exceeds
  ``budget_gb`` GiB, before anything is compiled; the error gives the estimate, the budget
  (``field``) and the config fields that set the size. Returns the estimate in bytes."""
  need = bytes_per_config(static)
  if need > budget_gb * 2**30:
    raise ValueError(
        f"one configuration needs about {need / 2**30:.1f} GiB of device memory (estimate; "
        f"d={static.d}, width={static.width}, n_train={static.n_train}, n_eval={static.n_eval}, "
        f"batch={static.batch}, {static.n_logs} logs), more than {field}={budget_gb} GiB; "
        f"lower data.n_eval, data.n_train, model.width or train.batch_size, or raise {field} "
        "if the device has the memory")
  return need
