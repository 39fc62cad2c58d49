"""Sweep axes written as strings: ``"model.activation=relu,gelu,tanh"``.

The syntax shared by ``sweep.axes`` (``;``-separated axes), ``python -m experiments.sweep
--axis=...`` and ``featcon.sweep(config, axes=[...])`` (``docs/sweeps.md``):
``<field>=<v1>,<v2>,...`` where ``<field>`` is a dotted field of :func:`featcon.default_config`. Each value is typed like the field's default: ``int``,
``float``, ``bool`` (``true``/``false``, ``1``/``0``, ``yes``/``no``) or ``str``; a field whose
default is a tuple (``data.core_radii``) takes parenthesised tuples, ``(1,2),(1,3)``. A value
may also be written as a Python list literal, ``[0.01, 0.1]``.

:func:`parse_axes` reads a ``sweep.axes`` string, :func:`parse_axis` one axis,
:func:`format_axes` writes axes back as a ``sweep.axes`` string.
"""
import ast

from featcon.theory import schema

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _defaults():
  return {f.name: f.default for f in schema.FIELDS}


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


def parse_axes(text):
  """A ``sweep.axes`` string ``"f1=v1,v2;f2=v3"`` → ``[(field, [typed values])]`` in order
  (empty for ``""``); a field given twice is an error."""
  if not isinstance(text, str):
    raise ValueError(f"config field 'sweep.axes' has value {text!r}; allowed: a string of "
                     "';'-separated axes such as 'seed=0,1;model.width=64,256'")
  out, seen = [], set()
  for spec in (p.strip() for p in text.split(";")):
    if not spec:
      continue
    field, values = parse_axis(spec)
    if field in seen:
      raise ValueError(f"config field 'sweep.axes' names {field!r} twice ({text!r}); allowed: "
                       "each field once")
    seen.add(field)
    out.append((field, values))
  return out


def _text(v):
  if isinstance(v, tuple):
    return "(" + ",".join(repr(x) for x in v) + ")"
  return repr(v) if isinstance(v, float) else str(v)


def format_axes(axes):
  """``[(field, values)]`` (or a dict) as a ``sweep.axes`` string that :func:`parse_axes`
  reads back to the same values."""
  items = axes.items() if isinstance(axes, dict) else axes
  return ";".join(f"{f}=" + ",".join(_text(v) for v in values) for f, values in items)
