"""Configuration of one simulation: defaults, resolution and validation.

Every field is documented in ``docs/config.md`` with its meaning, default, allowed values and
the paper's symbol. Validation runs before anything is compiled and raises ``ValueError``
naming the field, the value and what is allowed.
"""
import copy
import math
import numbers

import ml_collections

from featcon.theory import features, losses, network, optim

TASKS = ("classification", "regression")
REGIMES = ("fixed", "online")
PATHS = ("auto", "feature", "input")


def default_config():
  """The public script's classification setting of docs/theory.md, exactly.

  Fixed set of n = 1000, d = 256, K_core = K_bg = 32, width 256, ReLU, hinge loss, SGD with
  momentum 0.9, lr 1e-3, coupled weight decay 1e-3 (eq. 4), 20,000 steps, and the script's
  ``nn.Linear`` layers with their default biases: PyTorch init for both layers, the hidden
  bias trained, the output weights overwritten with +-1/m and frozen, the output bias frozen at
  its random initial value U(-1/sqrt(m), 1/sqrt(m)). The script's reported OOD loss is the
  metric ``train_ood_risk`` (the training cores with the background redrawn).

  The theorems' idealised setting (Section 3.2: no biases) is this with
  ``model.bias = False`` (:func:`theory_config`).
  """
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.task = "classification"
  c.data.d = 256
  c.data.k_core = 32
  c.data.k_bg = 32
  c.data.core = "linear"
  c.data.core_radii = (1.0, 2.0)
  c.data.coeff_dist = "uniform"
  c.data.shift = 1.0
  c.data.regime = "fixed"
  c.data.n_train = 1000
  c.data.n_eval = 4096

  c.model = ml_collections.ConfigDict()
  c.model.width = 256
  c.model.activation = "relu"
  c.model.leaky_slope = 0.1
  c.model.init = "pytorch"
  c.model.init_scale = 1.0
  c.model.bias = True
  c.model.train_output = False
  c.model.output_init = "signs"
  c.model.output_signs = "half"
  c.model.output_bias_init = "pytorch"

  c.train = ml_collections.ConfigDict()
  c.train.loss = "hinge"
  c.train.optimizer = "sgd"
  c.train.lr = 1e-3
  c.train.lr_schedule = "constant"
  c.train.warmup_steps = 0
  c.train.momentum = 0.9
  c.train.weight_decay = 1e-3
  c.train.b1 = 0.9
  c.train.b2 = 0.999
  c.train.eps = 1e-8
  c.train.batch_size = 0
  c.train.steps = 20000
  c.train.log_every = 0  # 0: automatic, see auto_log_every
  c.train.oracle_projection = False
  c.train.path = "auto"
  c.train.linear_shortcut = True
  return c


def theory_config():
  """The theorems' idealised setting (Section 3.2): :func:`default_config` without biases.

  The one override is ``model.bias = False``: no hidden bias b_r and no output bias c.
  """
  c = default_config()
  c.model.bias = False
  return c


def _merge(base, override, prefix=""):
  for k, v in override.items():
    name = f"{prefix}{k}"
    if k not in base:
      allowed = ", ".join(sorted(base.keys()))
      raise ValueError(f"unknown config field {name!r}; allowed fields here: {allowed}")
    if isinstance(base[k], ml_collections.ConfigDict):
      if not isinstance(v, (dict, ml_collections.ConfigDict)):
        raise ValueError(f"config field {name!r} must be a section (dict), got {v!r}")
      _merge(base[k], v, prefix=f"{name}.")
    else:
      if isinstance(v, (dict, ml_collections.ConfigDict)):
        raise ValueError(f"config field {name!r} is a value, not a section; got {v!r}")
      with base.ignore_type():
        base[k] = tuple(v) if isinstance(v, list) else v


def resolve(config=None):
  """Defaults overlaid with ``config`` (ConfigDict or nested dict), validated.

  Raises:
    ValueError: for an unknown field or a value outside what :func:`validate` allows.
  """
  base = default_config()
  if config is not None:
    if isinstance(config, ml_collections.ConfigDict):
      config = config.to_dict()
    if not isinstance(config, dict):
      raise ValueError(f"config must be a ConfigDict or a nested dict, got {type(config).__name__}")
    _merge(base, copy.deepcopy(config))
  if base.train.log_every == 0 and isinstance(base.train.steps, int) and base.train.steps >= 1:
    base.train.log_every = auto_log_every(base.train.steps)
  validate(base)
  return base


def auto_log_every(steps, target=20):
  """The measurement interval used when ``train.log_every`` is 0 (the default): the divisor of
  ``steps`` that gives the number of log intervals closest to ``target`` (ratio-wise; ties go
  to fewer logs). 20,000 steps give 1,000; 100 give 5; a prime number of steps gives 1 or the
  whole run, whichever is closer to 20 intervals.
  """
  divisors = [d for d in range(1, int(math.isqrt(steps)) + 1) if steps % d == 0]
  divisors = sorted(set(divisors + [steps // d for d in divisors]))
  return min(divisors, key=lambda d: (abs(math.log((steps // d) / target)), -d))


def _fail(field, value, allowed):
  raise ValueError(f"config field {field!r} has value {value!r}; allowed: {allowed}")


def _choice(c, field, allowed):
  v = _get(c, field)
  if v not in allowed:
    _fail(field, v, f"one of {tuple(allowed)}")


def _get(c, field):
  for part in field.split("."):
    c = c[part]
  return c


def _int(c, field, lo=None, hi=None):
  v = _get(c, field)
  if isinstance(v, bool) or not isinstance(v, numbers.Integral):
    _fail(field, v, "an integer")
  if (lo is not None and v < lo) or (hi is not None and v > hi):
    _fail(field, v, f"an integer in [{lo}, {'inf' if hi is None else hi}]")
  return int(v)


def _real(c, field, lo=None, hi=None, lo_open=False, hi_open=False):
  v = _get(c, field)
  if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
    _fail(field, v, "a finite real number")
  if lo is not None and (v < lo or (lo_open and v == lo)):
    _fail(field, v, f"a number {'>' if lo_open else '>='} {lo}")
  if hi is not None and (v > hi or (hi_open and v == hi)):
    _fail(field, v, f"a number {'<' if hi_open else '<='} {hi}")
  return float(v)


def _bool(c, field):
  v = _get(c, field)
  if not isinstance(v, bool):
    _fail(field, v, "True or False")


def validate(c):
  """Checks every field of a resolved config; raises ValueError naming field, value, allowed."""
  _int(c, "seed", 0, 2**32 - 1)
  _choice(c, "data.task", TASKS)
  d = _int(c, "data.d", 1)
  kc = _int(c, "data.k_core", 1)
  kb = _int(c, "data.k_bg", 0)
  if kc + kb > d:
    _fail("data.k_core", kc, f"k_core + k_bg <= d = {d} (k_bg = {kb}); an orthonormal "
          "dictionary has at most d features")
  _choice(c, "data.core", features.CORE_KINDS)
  radii = c.data.core_radii
  if (not isinstance(radii, (tuple, list)) or len(radii) != 2
      or not all(isinstance(r, numbers.Real) and r > 0 for r in radii)):
    _fail("data.core_radii", radii, "two positive radii (r_+1, r_-1)")
  _choice(c, "data.coeff_dist", features.COEFF_DISTS)
  _real(c, "data.shift", 0.0, 1.0)
  _choice(c, "data.regime", REGIMES)
  n = _int(c, "data.n_train", 2)
  _int(c, "data.n_eval", 2)

  _int(c, "model.width", 1)
  _choice(c, "model.activation", network.ACTIVATIONS)
  _real(c, "model.leaky_slope", 0.0, 1.0)
  _choice(c, "model.init", network.INITS)
  _real(c, "model.init_scale", 0.0, lo_open=True)
  _bool(c, "model.bias")
  _bool(c, "model.train_output")
  _choice(c, "model.output_init", network.OUTPUT_INITS)
  _choice(c, "model.output_signs", network.OUTPUT_SIGNS)
  _choice(c, "model.output_bias_init", network.OUTPUT_BIAS_INITS)

  _choice(c, "train.loss", losses.LOSSES)
  if c.data.task == "regression" and c.train.loss != "mse":
    _fail("train.loss", c.train.loss, "'mse' when data.task='regression'")
  if c.data.task == "classification" and c.train.loss == "mse":
    _fail("train.loss", c.train.loss, "'hinge' or 'logistic' when data.task='classification'")
  _choice(c, "train.optimizer", optim.OPTIMIZERS)
  _real(c, "train.lr", 0.0, lo_open=True)
  _choice(c, "train.lr_schedule", optim.SCHEDULES)
  # The step counter and the logged step axis are int32 on device.
  steps = _int(c, "train.steps", 1, 2**31 - 1)
  _int(c, "train.warmup_steps", 0, steps)
  _real(c, "train.momentum", 0.0, 1.0, hi_open=True)
  _real(c, "train.weight_decay", 0.0)
  _real(c, "train.b1", 0.0, 1.0, hi_open=True)
  _real(c, "train.b2", 0.0, 1.0, hi_open=True)
  _real(c, "train.eps", 0.0)
  if c.data.regime == "online":
    _int(c, "train.batch_size", 1)
  else:
    _int(c, "train.batch_size", 0, n)
  log_every = _int(c, "train.log_every", 1, steps)
  if steps % log_every:
    _fail("train.log_every", log_every, f"a divisor of train.steps = {steps}")
  _bool(c, "train.oracle_projection")
  _choice(c, "train.path", PATHS)
  _bool(c, "train.linear_shortcut")
  if c.train.path == "feature" and not optim.rotation_equivariant(c.train.optimizer):
    _fail("train.path", "feature", f"'auto' or 'input' for train.optimizer="
          f"{c.train.optimizer!r} (coordinate-wise optimizers must run in input space)")
  return c
