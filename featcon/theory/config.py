"""Configuration of one simulation: defaults, resolution and validation, all from the one
schema (:mod:`featcon.theory.schema`, tabulated in ``docs/config.md``).

Validation runs before anything is compiled and raises ``ValueError`` naming the field, the
value and what is allowed.
"""
import copy
import math

import ml_collections

from featcon.theory import schema


def default_config():
  """The public script's classification setting of docs/theory.md, exactly
  (the defaults of :data:`featcon.theory.schema.FIELDS`).

  Fixed set of n = 1000, d = 256, K_core = K_bg = 32, width 256, ReLU, hinge loss, SGD with
  momentum 0.9, lr 1e-3, coupled weight decay 1e-3 (eq. 4), 20,000 steps, and the script's
  ``nn.Linear`` layers with their default biases: PyTorch init for both layers, the hidden
  bias trained, the output weights overwritten with +-1/m and frozen, the output bias frozen at
  its random initial value U(-1/sqrt(m), 1/sqrt(m)). The script's reported OOD loss is the
  metric ``train_ood_risk`` (the training cores with the background redrawn).

  The theorems' idealised setting (Section 3.2: no biases) is this with
  ``model.bias = False`` (:func:`theory_config`).
  """
  return schema.build(schema.FIELDS)


def theory_config():
  """The theorems' idealised setting (Section 3.2): :func:`default_config` without biases.

  The one override is ``model.bias = False``: no hidden bias b_r and no output bias c.
  """
  return theorems(default_config())


def theorems(c):
  """``c`` set to the theorems' idealised network (Section 3.2): ``model.bias = False``, no
  hidden bias b_r and no output bias c. Returns ``c`` (changed in place)."""
  c.model.bias = False
  return c


def sweep_config():
  """:func:`default_config` with the ``sweep`` section (:data:`featcon.theory.schema.SWEEP_FIELDS`
  at their defaults: no axes, one configuration)."""
  c = default_config()
  c.sweep = schema.build(schema.SWEEP_FIELDS).sweep
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


def overlay(config=None):
  """:func:`default_config` overlaid with ``config`` (ConfigDict or nested dict), not yet
  resolved or validated.

  Raises:
    ValueError: for an unknown field, or a section given a value (or a value a section).
  """
  base = default_config()
  if config is not None:
    if isinstance(config, ml_collections.ConfigDict):
      config = config.to_dict()
    if not isinstance(config, dict):
      raise ValueError(f"config must be a ConfigDict or a nested dict, got {type(config).__name__}")
    _merge(base, copy.deepcopy(config))
  return base


def resolve(config=None):
  """Defaults overlaid with ``config`` (ConfigDict or nested dict), the automatic
  ``train.log_every`` resolved, validated.

  Raises:
    ValueError: for an unknown field or a value outside what :func:`validate` allows.
  """
  base = overlay(config)
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


def validate(c):
  """Checks every field of a resolved config (:func:`featcon.theory.schema.check`); raises
  ValueError naming field, value and what is allowed."""
  return schema.check(c)
