"""The compiled program's inputs: :class:`Static` (what fixes shapes and code) and
:class:`Dynamic` (values ``vmap`` varies), split from a config by the schema
(:func:`from_config`), the memory estimate of one configuration (:func:`bytes_per_config`)
and the XLA options of the theory programs (:func:`compiler_options`).
"""
import dataclasses
import os
from typing import NamedTuple, Tuple

import jax
import numpy as np

from featcon.theory import metrics, optim, schema


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
  k_spurious: int = 0         # background coordinates correlated with the label (data.bg_label_corr)
  regime: str = "fixed"
  n_train: int = 1000
  n_eval: int = 4096
  width: int = 256            # rows of W: the (padded) width of every hidden layer
  depth: int = 1              # hidden layers
  train_layers: str = "all"   # "all" hidden layers train, or the "first" only
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
  layer_metrics: bool = False  # per-layer sensitivities and OOD movement (metrics.layer_metrics)
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
  bg_label_corr: jax.Array    # rho of the spurious background coordinates
  width: jax.Array            # actual width <= Static.width
  batch_size: jax.Array       # actual batch <= Static.batch (ignored for full batch)
  act_index: jax.Array        # index into Static.activations


# Static attributes that no config field sets: make_groups chooses them per compiled group.
GROUP_FIELDS = ("return_params", "use_momentum", "masked", "batch_padded", "linear", "n_shifts")
# Dynamic attributes that no config field sets: make_groups chooses them per configuration.
GROUP_DYNAMIC = ("act_index",)


def resolved_values(c):
  """The flat ``{field: value}`` of a resolved config with ``train.path`` and
  ``train.batch_size`` resolved: ``path="auto"`` is ``feature`` where that path is exact
  (:func:`featcon.theory.optim.rotation_equivariant`), else ``input``; a full fixed-set batch
  (0 or n_train) is 0."""
  v = {f.name: schema.get(c, f.name) for f in schema.FIELDS}
  if v["train.path"] == "auto":
    v["train.path"] = "feature" if optim.rotation_equivariant(v["train.optimizer"]) else "input"
  if v["data.regime"] == "fixed" and v["train.batch_size"] in (0, v["data.n_train"]):
    v["train.batch_size"] = 0
  return v


def from_config(c, return_params=True):
  """Splits a resolved config (:mod:`featcon.theory.config`) into ``(Static, Dynamic)``: each
  field goes where its :class:`featcon.theory.schema.Field` says (``static``, ``dynamic``)."""
  v = resolved_values(c)
  kw = {}
  for f in schema.FIELDS:
    if f.static is not None:
      name, conv = (f.static, None) if isinstance(f.static, str) else f.static
      kw[name] = conv(v[f.name]) if conv else v[f.name]
  static = Static(**kw, return_params=return_params,
                  use_momentum=uses_momentum(v["train.optimizer"], v["train.momentum"]),
                  masked=False, batch_padded=False)
  static = dataclasses.replace(
      static, linear=v["train.linear_shortcut"] and linear_eligible(static))
  dyn = make_dynamic(**{f.dynamic: v[f.name] for f in schema.FIELDS if f.dynamic},
                     act_index=0)
  return static, dyn


def linear_eligible(static):
  """Whether a run is a linear network whose SGD dynamics stay rank-one around the init.

  With one hidden layer, the identity activation, a frozen output ``A`` (m, o) (``a`` as (m, 1) for a scalar
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
  return (static.activations == ("identity",) and static.depth == 1 and not static.train_output
          and static.optimizer == "sgd" and not static.oracle_projection)


def uses_momentum(optimizer, momentum):
  """Whether a run needs the SGD momentum trace (``optax.trace`` with decay 0 is the identity)."""
  return optimizer == "sgd" and float(momentum) != 0.0


def make_dynamic(**kw):
  """A :class:`Dynamic` of numpy scalars with the program's dtypes (uint32 seed, int32 sizes,
  float32 the rest); host values, so building a sweep's plan compiles nothing."""
  ints = {"width", "batch_size", "act_index"}
  out = {}
  for f in Dynamic._fields:
    v = kw[f]
    if f == "seed":
      out[f] = np.asarray(v, np.uint32)
    elif f in ints:
      out[f] = np.asarray(v, np.int32)
    else:
      out[f] = np.asarray(v, np.float32)
  return Dynamic(**out)


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


def bytes_per_config(static):
  """A conservative estimate of the device memory (bytes) one configuration needs: one
  :func:`make_train` program, or one configuration of a vmapped sweep group."""
  dim = static.k if static.path == "feature" else static.d
  out = static.out_dim or 1
  rows_train = static.n_train if static.regime == "fixed" else 0
  batch = static.batch or static.n_train
  sets = 1 + max(1, static.n_shifts)                        # ID set and one OOD set per shift
  # measured a block of rows at a time (metrics.row_sums), all at once for the layer metrics
  eval_rows = static.n_eval if static.layer_metrics else min(static.n_eval, metrics.EVAL_BLOCK)
  floats = (
      static.d * static.k                                   # dictionary
      + sets * static.n_eval * (dim + out)                  # eval sets
      + sets * eval_rows * static.width                      # their pre-activations
      + sets * rows_train * (dim + out)                     # fixed set and its OOD copies
      + 4 * batch * (dim + 2 * static.width + out)          # a step's activations and grads
      + 4 * static.width * (dim + out + 1)                  # params, grads, optimizer state
      + 2 * static.width * static.d                         # init in input space
      + (static.n_logs + 1) * (2 * static.width + 32)       # recorded metrics
      + (static.depth - 1) * (                              # hidden layers 2..L
          4 * static.width * (static.width + 1)             # params, grads, optimizer state
          + sets * eval_rows * static.width                  # eval-set activations
          + 4 * batch * 2 * static.width)                   # a step's activations and grads
      + (static.layer_metrics * static.depth * 2 * metrics.SENS_SAMPLES * static.width * static.k)
  )
  # float32; x4 for XLA temporaries and layout copies. Calibrated on the online workload
  # (benchmarks/scaling.py, n_eval 1024, width 512): the formula alone gives 3.3 MB/config and
  # the measured peak RSS grows by 2.8 MB/config (64 -> 256 configurations in one chunk); the
  # 4,096-configuration sweep peaks at 1.5 GiB under the 4 GiB budget. (Before the evaluation
  # sets were measured block by block, a factor 2 over-filled the budget.)
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
