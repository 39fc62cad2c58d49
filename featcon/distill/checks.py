"""Every numeric and choice field of a deep-network stage's config, checked before any work
(:func:`check_fields`): a bad value is a :class:`featcon.errors.ConfigError` naming the field,
the value and what is allowed, before a teacher is pre-trained or a data set is opened.

The table :data:`FIELDS` names each field with its rule; a field a config does not have is
skipped (the configs of ``configs/distill/`` share ``configs/distill/base.py`` but not every
optional field). Names (encoders, data references, teacher sources) are checked by
:func:`featcon.distill.runs.validate_config`.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, NamedTuple

from featcon.data import preprocess
from featcon.errors import ConfigError

_STAGE_ORDER = ("distill", "linear_probe", "evaluate")


class Rule(NamedTuple):
  """``ok(value) -> bool`` and the allowed values in words."""
  ok: Callable[[Any], bool]
  allowed: str


def _int(lo: int) -> Rule:
  return Rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo,
              f"an integer >= {lo}")


def _real(lo: float, open_lo: bool = False) -> Rule:
  def ok(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    return v > lo if open_lo else v >= lo
  return Rule(ok, f"a finite number {'>' if open_lo else '>='} {lo:g}")


def _finite() -> Rule:
  return Rule(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(v), "a finite number")


def _choice(*allowed: str) -> Rule:
  return Rule(lambda v: v in allowed, ", ".join(allowed))


def _bool() -> Rule:
  return Rule(lambda v: isinstance(v, bool), "True or False")


def _floats(lo: float, hi: float | None, open_lo: bool) -> Rule:
  def ok(v):
    try:
      xs = [float(t) for t in str(v).split(",") if t.strip()]
    except ValueError:
      return False
    return bool(xs) and all(math.isfinite(x) and (x > lo if open_lo else x >= lo)
                            and (hi is None or x <= hi) for x in xs)
  bound = f"{'>' if open_lo else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
  return Rule(ok, f"comma-separated finite numbers {bound}")


def _baseline(v) -> bool:
  return v in ("pixels", "none") or (isinstance(v, str) and v.startswith("csv:")
                                     and os.path.isfile(v[4:]))


POSITIVE_INT, COUNT, LR = _int(1), _int(0), _real(0.0, open_lo=True)
# (field, rule, the first stage that reads it)
FIELDS = (
    ("seed", COUNT, "distill"),
    ("num_devices", COUNT, "distill"),
    ("data.image_size", POSITIVE_INT, "distill"),
    ("data.augment", _choice(*preprocess.AUGMENTATIONS), "distill"),
    ("data.workers", COUNT, "distill"),
    ("data.distill_limit", COUNT, "distill"),
    ("data.eval_limit", COUNT, "evaluate"),
    ("data.digits.copies", POSITIVE_INT, "distill"),
    ("teacher.data_limit", COUNT, "distill"),
    ("teacher.pretrain.steps", COUNT, "distill"),
    ("teacher.pretrain.batch_size", POSITIVE_INT, "distill"),
    ("teacher.pretrain.lr", LR, "distill"),
    ("teacher.pretrain.weight_decay", _real(0.0), "distill"),
    ("teacher.pretrain.warmup_steps", COUNT, "distill"),
    ("distill.steps", POSITIVE_INT, "distill"),
    ("distill.batch_size", POSITIVE_INT, "distill"),
    ("distill.lr", LR, "distill"),
    ("distill.weight_decay", _real(0.0), "distill"),
    ("distill.warmup_steps", COUNT, "distill"),
    ("distill.block_weight", _real(0.0), "distill"),
    ("distill.init_attention_from_teacher", _bool(), "distill"),
    ("distill.checkpoint_every", POSITIVE_INT, "distill"),
    ("distill.log_every", POSITIVE_INT, "distill"),
    ("distill.stop_after", _int(-1), "distill"),
    ("distill.bn_recalibration", COUNT, "distill"),
    ("distill.cached_targets", _bool(), "distill"),
    ("probe.optimizer", _choice("adamw", "adam"), "linear_probe"),
    ("probe.lr", LR, "linear_probe"),
    ("probe.weight_decay", _real(0.0), "linear_probe"),
    ("probe.weight_decay_teacher", _finite(), "linear_probe"),
    ("probe.batch_size", POSITIVE_INT, "linear_probe"),
    ("probe.epochs", POSITIVE_INT, "linear_probe"),
    ("probe.ridge_lambdas", _floats(0.0, None, open_lo=True), "linear_probe"),
    ("probe.feature_batch_size", POSITIVE_INT, "linear_probe"),
    ("probe.primary", _choice("adamw", "ridge"), "evaluate"),
    ("eval.metric", _choice("accuracy", "macro_f1"), "evaluate"),
    ("eval.baseline", Rule(_baseline, "pixels, none or csv:PATH of an existing file"),
     "evaluate"),
    ("eval.baseline_fractions", _floats(0.0, 1.0, open_lo=True), "evaluate"),
)


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    if part not in node:
      return _ABSENT
    node = node[part]
  return node


_ABSENT = object()


def check_table(config, table, prefix: str = "config.") -> None:
  """Checks every ``(field, rule)`` of ``table`` that ``config`` has; raises
  :class:`featcon.errors.ConfigError` ``<prefix><field>=<value> is not allowed; allowed: ...``
  for the first bad one."""
  for field, rule in table:
    value = _get(config, field)
    if value is not _ABSENT and not rule.ok(value):
      raise ConfigError(f"{prefix}{field}={value!r} is not allowed; allowed: {rule.allowed}")


def ints(lo: int) -> Rule:
  """A non-empty tuple or list of integers >= ``lo``."""
  one = _int(lo)
  return Rule(lambda v: isinstance(v, (tuple, list)) and bool(v) and all(one.ok(x) for x in v),
              f"a non-empty tuple of integers >= {lo}")


def fraction(open_hi: bool = True) -> Rule:
  """A number in (0, 1) (or (0, 1])."""
  return Rule(lambda v: _real(0.0, open_lo=True).ok(v) and (v < 1 if open_hi else v <= 1),
              "a number in (0, 1)" if open_hi else "a number in (0, 1]")


def choice(*allowed: str) -> Rule:
  return _choice(*allowed)


def boolean() -> Rule:
  return _bool()


def real(lo: float, open_lo: bool = False) -> Rule:
  return _real(lo, open_lo)


def check_fields(config, stage: str) -> None:
  """Checks every field of :data:`FIELDS` that ``stage`` (or an earlier stage whose outputs it
  reads or makes) depends on; ``real_experiment`` runs every stage.

  Raises:
    ConfigError: ``config.<field>=<value> is not allowed; allowed: ...`` for the first bad
      field.
  """
  last = len(_STAGE_ORDER) if stage not in _STAGE_ORDER else _STAGE_ORDER.index(stage) + 1
  read = set(_STAGE_ORDER[:last])
  check_table(config, [(field, rule) for field, rule, first in FIELDS if first in read])
  if _get(config, "teacher.source") == "pretrain" and _get(config, "teacher.pretrain.steps") == 0:
    raise ConfigError("config.teacher.pretrain.steps=0 is not allowed; allowed: an integer "
                      ">= 1 when config.teacher.source='pretrain'")
  stop = _get(config, "distill.stop_after")
  steps = _get(config, "distill.steps")
  if stop is not _ABSENT and steps is not _ABSENT and stop > steps:
    raise ConfigError(f"config.distill.stop_after={stop!r} is not allowed; allowed: -1 (run "
                      f"to the end) or a step in 0..config.distill.steps={steps}")
