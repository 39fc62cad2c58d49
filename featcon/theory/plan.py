"""The sweep planner: a sweep config → the configurations (expand), their compiled groups
(group) and the chunking of each group (chunk). Pure host code: nothing here compiles or runs a
JAX program, so a plan is cheap to make and to test.

A sweep config (docs/sweeps.md) is a scalar :func:`featcon.theory.config.sweep_config`: one
point of the theory config plus a ``sweep`` section whose ``sweep.axes`` declares the axes
(``"seed=0,1,2,3;model.activation=relu,identity"``, :mod:`featcon.theory.axes`). Axes combine
as a product: the groups of ``sweep.zip`` first (outermost), each advancing its fields
together, then the other axes in alphabetical order of their dotted names (``model.activation``
before ``seed``), whatever order they were declared in. A nested dict or ConfigDict whose fields hold lists (the list form,
``featcon.sweep({"seed": [0, 1]})``) declares the same axes: a list is an axis (a field whose
default is a tuple, ``data.core_radii``, takes a list of tuples).

:func:`make_plan` gives a :class:`Plan`; :func:`make_groups` splits resolved configurations into
:class:`Group` s (``Static``/``Dynamic`` by :func:`featcon.theory.program.from_config`), and
:func:`chunk_size` sizes a group's compiled calls from the memory budget.
"""
import copy
import dataclasses
import hashlib
import itertools
import json
import math
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import ml_collections
import numpy as np

from featcon import io
from featcon.errors import ConfigError
from featcon.theory import axes as axes_lib
from featcon.theory import config as config_lib
from featcon.theory import metrics as metrics_lib
from featcon.theory import program
from featcon.theory import schema
from featcon.version import __version__

_SWEEP_KEYS = tuple(f.name.split(".", 1)[1] for f in schema.SWEEP_FIELDS)


class Plan(NamedTuple):
  """A sweep, planned: every configuration and what the workdir records.

  Attributes:
    points: ``[(swept values {field: value}, configuration as a nested dict)]`` in product
      order (the ``config_id`` of the results).
    configs: each point's configuration resolved and validated
      (:func:`featcon.theory.config.resolve`), what :func:`make_groups` splits.
    axes: ``{field: [values]}``, the swept fields in product order.
    options: the ``sweep`` section (``zip``, ``memory_budget_gb``, ``max_chunk``,
      ``progress``), checked.
    record: the plain (JSON) config a workdir records and compares: every field, the swept
      ones as their lists of values, and the sweep options.
  """
  points: List[Tuple[Dict[str, Any], Dict[str, Any]]]
  configs: List[ml_collections.ConfigDict]
  axes: Dict[str, list]
  options: Dict[str, Any]
  record: Dict[str, Any]


def _plain(x):
  return json.loads(json.dumps(x, default=list))  # tuples become lists, deep copy


def _as_dict(config):
  if config is None:
    return {}
  if isinstance(config, ml_collections.ConfigDict):
    return config.to_dict()
  if not isinstance(config, dict):
    raise ValueError(f"a sweep config must be a ConfigDict or a nested dict, got "
                     f"{type(config).__name__}")
  return config


def _flatten(d, prefix=""):
  """``{"a.b": value}`` of a nested dict, values as given (a list stays a list, a tuple a
  tuple: only lists are axes)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, (dict, ml_collections.ConfigDict)):
      out.update(_flatten(dict(v), f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _is_axis(field, value):
  """Whether a field's value in the list form is an axis (a list; for a tuple-valued field, a
  list of tuples)."""
  if not isinstance(value, list):
    return False
  default = schema.BY_NAME[field].default if field in schema.BY_NAME else None
  return not isinstance(default, tuple) or (bool(value) and isinstance(value[0], (list, tuple)))


def _set(d, dotted, value):
  *sections, leaf = dotted.split(".")
  for s in sections:
    d = d.setdefault(s, {})
  d[leaf] = value


def sweep_options(section):
  """The ``sweep`` section (a dict, possibly partial) with its defaults, each field checked
  (:data:`featcon.theory.schema.SWEEP_FIELDS`)."""
  section = dict(section or {})
  for k in section:
    if k not in _SWEEP_KEYS:
      raise ValueError(f"unknown config field 'sweep.{k}'; allowed: {sorted(_SWEEP_KEYS)}")
  out = {f.name.split(".", 1)[1]: section.get(f.name.split(".", 1)[1], f.default)
         for f in schema.SWEEP_FIELDS}
  schema.check({"sweep": out}, schema.SWEEP_FIELDS)
  return out


def _axis_items(axes):
  """The ``axes`` argument of :func:`make_plan` as ``[(field, [values])]``."""
  if axes is None:
    return []
  if isinstance(axes, str):
    return axes_lib.parse_axes(axes)
  if isinstance(axes, dict):
    return [(f, axes_lib.parse_values(f, v)) for f, v in axes.items()]
  return [axes_lib.parse_axis(a) for a in axes]


def make_plan(config, axes=None, pinned=()):
  """Plans a sweep: the configurations of ``config`` with its axes.

  Args:
    config: a sweep config (ConfigDict or nested dict, possibly partial; missing fields take
      :func:`featcon.theory.config.sweep_config`'s defaults), with axes in ``sweep.axes``
      and/or as lists (module docstring).
    axes: axes that set or replace those of ``config``: ``["seed=0,1", "model.width=8"]``,
      ``{"seed": "0,1"}`` or a ``sweep.axes`` string.
    pinned: fields set to one value on the command line (``--config.seed=5``): such a field
      stops being an axis and runs the config's value (a field of a ``sweep.zip`` group keeps a
      one-value axis, so its partners must be given one value too).

  Returns:
    A :class:`Plan`.

  Raises:
    ValueError: for an unknown field, a bad value or axis, a configuration that
      :func:`featcon.theory.config.resolve` refuses, or ``sweep.zip`` naming a field that is
      not an axis or fields of unequal lengths; before anything is compiled.
  """
  raw = _as_dict(config)
  flat = _flatten({k: v for k, v in raw.items() if k != "sweep"})
  options = sweep_options(raw.get("sweep"))
  text = options.pop("axes")
  declared = {}
  scalars = {}
  for field, value in flat.items():
    if field in schema.BY_NAME and _is_axis(field, value):
      if not value:
        raise ValueError(f"config field {field!r} is an empty list; a swept field needs values")
      declared[field] = [tuple(v) if isinstance(v, list) else v for v in value]
      scalars[field] = declared[field][0]
    else:
      scalars[field] = value
  declared.update(axes_lib.parse_axes(text))
  declared.update(_axis_items(axes))
  nested = {}
  for field, value in scalars.items():
    _set(nested, field, value)
  base = config_lib.overlay(nested).to_dict()
  zipped = [tuple(g) for g in options["zip"]]
  in_zip = {f for g in zipped for f in g}
  for field in pinned:
    if field in declared:
      if field in in_zip:
        declared[field] = [schema.get(base, field)]
      else:
        del declared[field]
  return _expand(base, declared, zipped, options)


def count_points(declared, zipped) -> int:
  """The number of configurations the axes ``declared`` (``{field: [values]}``) with the
  ``sweep.zip`` groups ``zipped`` expand to (a zip group counts once, by its length), computed
  without expanding them."""
  in_zip = {f for g in zipped for f in g}
  n = 1
  for group in zipped:
    n *= len(declared.get(group[0], [None]))
  for f, values in declared.items():
    if f not in in_zip:
      n *= len(values)
  return n


def _expand(base, declared, zipped, options):
  """The product of the axes ``declared`` over the scalar config ``base`` (a nested dict)."""
  n = count_points(declared, zipped)
  if n > options["max_configs"]:
    sizes = ", ".join(f"{f}: {len(v)}" for f, v in sorted(declared.items()))
    raise ConfigError(f"the sweep expands to {n} configurations ({sizes}), more than "
                      f"sweep.max_configs={options['max_configs']}; allowed: at most that many "
                      "(raise --config.sweep.max_configs to run it, or use fewer axis values)")
  groups, in_zip = [], set()
  for group in zipped:
    for f in group:
      if f not in declared:
        raise ValueError(f"sweep.zip names {f!r}, which is not a swept field; swept fields: "
                         f"{sorted(declared)}")
      if f in in_zip:
        raise ValueError(f"sweep.zip names {f!r} twice")
      in_zip.add(f)
    lens = {f: len(declared[f]) for f in group}
    if len(set(lens.values())) != 1:
      raise ValueError(f"sweep.zip group {group} has lists of different lengths {lens}")
    groups.append((group, list(zip(*[declared[f] for f in group]))))
  for f in sorted(declared):
    if f not in in_zip:
      groups.append(((f,), [(v,) for v in declared[f]]))
  points = []
  for combo in itertools.product(*[vals for _, vals in groups]):
    cfg = copy.deepcopy(base)
    swept = {}
    for (fields, _), values in zip(groups, combo):
      for f, v in zip(fields, values):
        _set(cfg, f, v)
        swept[f] = v
    points.append((swept, cfg))
  order = [f for fields, _ in groups for f in fields]
  record = _plain(base)
  for f in order:
    _set(record, f, _plain(declared[f]))
  record["sweep"] = _plain(options)
  configs = [config_lib.resolve(cfg) for _, cfg in points]
  return Plan(points, configs, {f: declared[f] for f in order}, options, record)


def expand(config, axes=None):
  """``make_plan(config, axes).points``: ``[(swept values, configuration)]``."""
  return make_plan(config, axes).points


@dataclasses.dataclass
class Group:
  """Configurations sharing one compiled program.

  ``dyns`` holds one entry per training (numpy, stacked along axis 0). ``members``, when given,
  lists for each training the configurations it measures, one per entry of its shift vector (a
  training shared by configurations that differ only in ``data.shift``); ``indices`` is then
  their concatenation. Without ``members`` each configuration is one training.
  """
  static: program.Static
  indices: list
  dyns: program.Dynamic  # stacked along axis 0
  members: Optional[list] = None
  stamp: Optional[dict] = None  # provenance of its results (:func:`group_stamp`)

  @property
  def key(self):
    return hashlib.sha1(repr(self.static).encode()).hexdigest()[:12]

  @property
  def n_trainings(self):
    return len(self.members) if self.members is not None else len(self.indices)

  def per_config(self, metrics, diverged):
    """Per-training results (arrays [training, ...]) as per-configuration results in the order
    of ``indices``: each configuration takes its shift's slice of the OOD metrics."""
    if self.members is None:
      return metrics, diverged
    rows = np.asarray([j for j, m in enumerate(self.members) for _ in m])
    slots = np.asarray([k for m in self.members for k in range(len(m))])
    out = {}
    for k, v in metrics.items():
      out[k] = v[rows, :, slots] if k in metrics_lib.SHIFT_KEYS else v[rows]
    return out, diverged[rows]


def _shared_training_key(static, dyn):
  """What fixes a training: everything but the shift strength (the OOD sets are measured only)."""
  values = tuple(np.asarray(v).item() for v in dyn._replace(shift=0.0))
  return static, values


def make_groups(resolved, share_training=True):
  """Groups resolved configs by compiled program (docs/sweeps.md, "What compiles").

  Configurations whose ``Static`` agrees once width, batch size and activation are taken out
  share a program: widths and batch sizes are padded to the group's largest, activations are
  switched, and the values of ``Dynamic`` are stacked. With ``share_training``,
  configurations that differ only in ``data.shift`` share one training that measures the OOD
  metrics for each of their shifts (``Static.n_shifts``; same numbers as one training per
  shift, since the shift only moves the OOD evaluation sets). ``False`` gives every
  configuration its own training.
  """
  trainings = {}
  for i, cfg in enumerate(resolved):
    static, dyn = program.from_config(cfg, return_params=False)
    key = _shared_training_key(static, dyn) if share_training else i
    trainings.setdefault(key, []).append((i, static, dyn))
  pending = {}
  for members in trainings.values():
    _, static, _ = members[0]
    key = dataclasses.replace(static, width=0, batch=int(static.batch > 0), activations=(),
                              use_momentum=False)
    pending.setdefault(key, []).append(members)
  groups = []
  for trains in pending.values():
    items = [t[0] for t in trains]  # each training's first configuration
    acts = tuple(sorted({s.activations[0] for _, s, _ in items}))
    width = max(s.width for _, s, _ in items)
    batch = max(s.batch for _, s, _ in items)
    n_shifts = max(len(t) for t in trains)
    n_shifts = n_shifts if n_shifts > 1 else 0
    static = dataclasses.replace(
        items[0][1], width=width, batch=batch, activations=acts,
        use_momentum=any(s.use_momentum for _, s, _ in items),
        masked=any(s.width < width for _, s, _ in items),
        batch_padded=any(s.batch < batch for _, s, _ in items), n_shifts=n_shifts)
    dyns = []
    for t in trains:
      _, s, d = t[0]
      d = d._replace(act_index=np.int32(acts.index(s.activations[0])))
      if n_shifts:  # the shift vector, padded by repeating its last strength
        shifts = [m[2].shift for m in t]
        d = d._replace(shift=np.stack(shifts + shifts[-1:] * (n_shifts - len(t))))
      dyns.append(d)
    stacked = program.Dynamic(*[np.stack(xs) for xs in zip(*dyns)])
    indices = [i for t in trains for i, _, _ in t]
    members = [[i for i, _, _ in t] for t in trains] if n_shifts else None
    groups.append(Group(static, indices, stacked, members,
                        group_stamp([resolved[i] for i in indices])))
  return groups


def group_stamp(configs) -> dict:
  """The provenance stamp (:func:`featcon.io.stamp`) of a group's results: every field of its
  resolved configurations, in the group's order (``configs``, the number of them; a field with
  one value in the group as that value, a field that varies as the list of its values), and the
  featcon version (the simulator's code). A
  finished group or chunk file is reused only under an equal stamp, so results are never read
  back for configurations that did not make them, whatever the workdir's record says."""
  flats = [io.flatten(c) for c in configs]
  fields = {"configs": len(flats), "featcon": __version__}
  for k in sorted({k for f in flats for k in f}):
    values = [f.get(k) for f in flats]
    fields[k] = values[0] if all(v == values[0] for v in values) else values
  return io.stamp(fields)


def chunk_size(static, n_configs, budget_gb, n_devices=1,
               max_chunk=schema.BY_NAME["sweep.max_chunk"].default):
  """Configurations per compiled call: fits the budget (:func:`featcon.theory.program.bytes_per_config`
  each), a multiple of the device count, and as even as possible (64 configurations that need
  two chunks run as 2 x 32, not 50 + 14 padded to 2 x 50: the last chunk is padded, so uneven
  chunks waste compute)."""
  per = program.bytes_per_config(static)
  fit = max(1, int(budget_gb * 2**30 // per))
  size = min(n_configs, fit, max_chunk)
  size = max(n_devices, (size // n_devices) * n_devices) if n_devices > 1 else size
  n_chunks = math.ceil(n_configs / size)
  even = math.ceil(n_configs / n_chunks)
  return min(size, math.ceil(even / n_devices) * n_devices)
