"""Sweep axes written as strings: ``"model.activation=relu,gelu,tanh"``.

The syntax shared by ``python -m experiments.sweep --axis=...`` and ``featcon.sweep(config,
axes=[...])`` (``docs/sweeps.md``): ``<field>=<v1>,<v2>,...`` where ``<field>`` is a dotted field
of :func:`featcon.default_config`. Each value is typed like the field's default: ``int``,
``float``, ``bool`` (``true``/``false``, ``1``/``0``, ``yes``/``no``) or ``str``; a field whose
default is a tuple (``data.core_radii``) takes parenthesised tuples, ``(1,2),(1,3)``. A value
may also be written as a Python list literal, ``[0.01, 0.1]``.

:func:`apply_axes` sets or replaces axes of a sweep config; :func:`split_argv` takes the
``--config.<field>=<value>`` overrides that ml_collections cannot apply (fields the config file
sweeps, or list literals) out of a command line so that they can be applied as axes.
"""
import ast
import copy
import re

import ml_collections

from featcon.theory import config as config_lib

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _defaults():
  out = {}

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      else:
        out[f"{prefix}{k}"] = v

  walk(config_lib.default_config().to_dict(), "")
  return out


def _split_top(text):
  """Splits ``text`` on commas outside brackets and quotes."""
  parts, depth, cur, quote = [], 0, "", None
  for ch in text:
    if quote:
      cur += ch
      if ch == quote:
        quote = None
      continue
    if ch in "'\"":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    if ch == "," and depth == 0:
      parts.append(cur)
      cur = ""
    else:
      cur += ch
  parts.append(cur)
  return [p.strip() for p in parts]


def _unquote(s):
  if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
    return s[1:-1]
  return s


def parse_value(field, text, default):
  """One value for ``field`` typed like ``default``; ValueError names field, value, allowed."""
  if not isinstance(text, str):
    return text
  s = _unquote(text.strip())
  try:
    if isinstance(default, bool):
      if s.lower() in _TRUE:
        return True
      if s.lower() in _FALSE:
        return False
      raise ValueError
    if isinstance(default, int):
      return int(s)
    if isinstance(default, float):
      v = float(s)
      return v
    if isinstance(default, tuple):
      v = ast.literal_eval(s)
      if not isinstance(v, (tuple, list)) or len(v) != len(default):
        raise ValueError
      return tuple(type(d)(x) if isinstance(d, float) else x for d, x in zip(default, v))
    return s
  except (ValueError, SyntaxError, TypeError):
    kind = ("true or false" if isinstance(default, bool) else "an integer"
            if isinstance(default, int) else "a number" if isinstance(default, float) else
            f"a tuple of {len(default)} numbers like {default}")
    raise ValueError(f"config field {field!r} has value {text!r}; allowed: {kind}") from None


def parse_values(field, text):
  """``"v1,v2,..."`` (or ``"[v1, v2]"``) for ``field`` → list of typed values."""
  defaults = _defaults()
  if field not in defaults:
    raise ValueError(f"unknown config field {field!r} in an axis; allowed: "
                     f"{', '.join(sorted(defaults))}")
  default = defaults[field]
  if isinstance(text, list):
    items = list(text)
  else:
    s = str(text).strip()
    if s.startswith("[") and s.endswith("]"):
      s = s[1:-1]
    items = [p for p in _split_top(s) if p != ""]
  if not items:
    raise ValueError(f"config field {field!r} has an empty axis {text!r}; allowed: one or more "
                     "comma-separated values")
  return [parse_value(field, v, default) for v in items]


def parse_axis(spec):
  """``"field=v1,v2,..."`` → ``(field, [typed values])``."""
  if not isinstance(spec, str) or "=" not in spec:
    raise ValueError(f"axis {spec!r}: expected '<field>=<v1>,<v2>,...' "
                     "(e.g. 'model.activation=relu,gelu')")
  field, _, text = spec.partition("=")
  return field.strip(), parse_values(field.strip(), text)


def _get(d, dotted):
  for p in dotted.split("."):
    if not isinstance(d, dict) or p not in d:
      return None
    d = d[p]
  return d


def set_dotted(d, dotted, value):
  """Sets ``d[a][b][c] = value`` for ``dotted = "a.b.c"`` in nested dicts, creating levels."""
  parts = dotted.split(".")
  for p in parts[:-1]:
    d = d.setdefault(p, {})
  d[parts[-1]] = value


def apply_axes(config, axes=None, singles=None):
  """A copy of sweep ``config`` (ConfigDict or dict) as a nested dict, with axes replaced.

  Args:
    config: a sweep config.
    axes: ``["field=v1,v2", ...]`` or ``{field: "v1,v2" | [values]}``: each sets or replaces
      the axis of ``field`` (a one-value axis is still an axis: a column of the results).
    singles: ``{field: "value"}``: each fixes ``field`` to one value; a field the config
      sweeps stops being an axis (a field in ``sweep.zip`` keeps a one-value list, so its
      partners must be given the same length with ``axes``).

  Returns:
    The nested dict, ready for :func:`featcon.theory.sweeps.expand`.
  """
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  out = copy.deepcopy(dict(config))
  zipped = set()
  sweep_sec = out.get("sweep") or {}
  for group in sweep_sec.get("zip", ()) or ():
    zipped.update(group)
  defaults = _defaults()
  for field, text in (singles or {}).items():
    if field not in defaults:
      raise ValueError(f"unknown config field {field!r}; allowed: {', '.join(sorted(defaults))}")
    s = str(text).strip()
    if isinstance(text, str) and s.startswith("[") and s.endswith("]"):
      set_dotted(out, field, parse_values(field, s))
      continue
    value = parse_value(field, text, defaults[field])
    set_dotted(out, field, [value] if field in zipped else value)
  if isinstance(axes, str):
    axes = [axes]
  items = axes.items() if isinstance(axes, dict) else [parse_axis(a) for a in (axes or [])]
  for field, values in items:
    values = parse_values(field, values) if isinstance(axes, dict) else values
    set_dotted(out, field, list(values))
  return out


_OVERRIDE = re.compile(r"^--?config\.([A-Za-z0-9_.]+)=(.*)$", re.S)


def split_argv(argv, swept_fields):
  """Takes ``--config.<field>=<value>`` overrides that must be applied as axes out of argv.

  Those are overrides of a field in ``swept_fields`` (a list in the config file, which
  ml_collections cannot override) and overrides whose value is a list literal ``[...]``. A
  field given several times (``--config.seed=1 --config.seed=2``) becomes the axis of those
  values, written as a list literal.

  Returns:
    ``(remaining argv, {field: value text})``.
  """
  rest, given = [], {}
  for arg in argv:
    m = _OVERRIDE.match(arg)
    if m and (m.group(1) in swept_fields or m.group(2).strip().startswith("[")):
      given.setdefault(m.group(1), []).append(m.group(2))
    else:
      rest.append(arg)
  singles = {f: v[0] if len(v) == 1 else "[" + ",".join(v) + "]" for f, v in given.items()}
  return rest, singles


def swept_fields(config):
  """Dotted names of the list-valued (swept) fields of a sweep config."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  out = []

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      elif isinstance(v, list):
        out.append(f"{prefix}{k}")

  walk({k: v for k, v in config.items() if k != "sweep"}, "")
  return out
