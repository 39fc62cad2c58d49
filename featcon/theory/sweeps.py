"""The sweep engine: ``featcon.sweep(config)`` and the work behind ``experiments.sweep``.

Axes (:func:`expand`), compiled groups (:func:`make_groups`), memory-sized chunks
(:func:`chunk_size`), sharding over devices and resumable workdirs (:func:`run_group`,
:func:`run`). What a sweep writes (tidy table, summary, figures) is
:mod:`featcon.theory.results`.

Sweep syntax (``docs/sweeps.md``): any field of a :func:`featcon.default_config` config may
hold a *list* of values; lists are axes and combine as a product. ``sweep.zip`` names groups of
fields whose lists advance together (one axis). Tuples are plain values (``core_radii``).
Axes can also be written as strings, ``"seed=0,1,2"`` (:mod:`featcon.theory.axes`; the
``axes`` argument of :func:`sweep` and ``--axis`` of ``experiments.sweep``).

The engine splits each configuration into :class:`featcon.theory.train.Static` and
:class:`featcon.theory.train.Dynamic`, groups configurations whose static part agrees once width,
batch size and activation are taken out, and compiles one ``jit(vmap(train))`` per group:

* seeds, learning rates, weight decays, momenta, Adam betas, init scales and shift strengths
  are vmapped values;
* configurations that differ only in ``data.shift`` share one training: training never sees
  the OOD sets, so one run measures the OOD metrics for each of their shift strengths (the
  same numbers as one training per shift);
* widths are padded to the group's largest and the extra neurons masked (exact);
* batch sizes (online, or minibatches of the fixed set) are padded to the largest and the
  extra rows given zero weight (exact);
* several activations in one group are chosen per configuration with ``lax.switch``, except
  the identity under the linear shortcut (``train.linear_eligible``), which gets its own cheap
  program;

What still compiles separately: anything that changes data shapes or code paths (d, K,
n_train, n_eval, steps, log_every, task, core, coefficient distribution, loss, optimizer,
schedule, regime, full-batch vs minibatch, bias/train_output/init choices, oracle projection,
path). Large groups run in equal chunks (so one compile serves them all) sized from a memory
budget; the configuration axis of each chunk is sharded over all devices. Groups run in turn,
and each next group compiles while the previous one trains (:func:`run_groups`).
"""
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import time
import types
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from featcon import distributed
from featcon import io
from featcon import progress as progress_lib
from featcon.theory import axes as axes_lib
from featcon.theory import config as config_lib
from featcon.theory import metrics as metrics_lib
from featcon.theory import results
from featcon.theory import train as train_lib

SWEEP_DEFAULTS = {"zip": (), "memory_budget_gb": 4.0, "max_chunk": 4096, "progress": True}


def sweep_section(config):
  """The ``sweep`` section of a sweep config, with defaults; checks its fields."""
  sec = dict(SWEEP_DEFAULTS)
  given = config.get("sweep", None) if isinstance(config, dict) else (
      config.sweep if "sweep" in config else None)
  if given is not None:
    given = given.to_dict() if isinstance(given, ml_collections.ConfigDict) else dict(given)
    for k, v in given.items():
      if k not in SWEEP_DEFAULTS:
        raise ValueError(f"unknown config field 'sweep.{k}'; allowed: {sorted(SWEEP_DEFAULTS)}")
      sec[k] = v
  if not (isinstance(sec["memory_budget_gb"], (int, float))
          and not isinstance(sec["memory_budget_gb"], bool) and sec["memory_budget_gb"] > 0):
    raise ValueError(f"config field 'sweep.memory_budget_gb' has value "
                     f"{sec['memory_budget_gb']!r}; allowed: a positive number of GiB")
  mc = sec["max_chunk"]
  if isinstance(mc, bool) or not isinstance(mc, (int, np.integer)) or mc < 1:
    raise ValueError(f"config field 'sweep.max_chunk' has value {mc!r}; allowed: a positive "
                     "integer (configurations per compiled call)")
  if not isinstance(sec["progress"], bool):
    raise ValueError(f"config field 'sweep.progress' has value {sec['progress']!r}; allowed: "
                     "True or False")
  return sec


# Sweep options that change how a sweep runs, not its results: a workdir may be resumed with
# other values (e.g. a lower memory budget after running out of memory).
RESULT_INVARIANT = ("sweep.memory_budget_gb", "sweep.max_chunk", "sweep.progress")


def check_memory(static, budget_gb):
  """:func:`featcon.theory.train.check_memory` against ``sweep.memory_budget_gb``."""
  return train_lib.check_memory(static, budget_gb, "sweep.memory_budget_gb")


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _plain(config):
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  return json.loads(json.dumps(config, default=list))  # tuples become lists, deep copy


def expand(config):
  """Expands a sweep config into ``[(swept_values: dict, simulate_config: dict)]``.

  Lists are axes (product); ``sweep.zip`` = ``(("train.lr", "train.weight_decay"), ...)``
  zips the named lists (equal lengths) into one axis. Fields whose default is a tuple
  (``data.core_radii``) take a list of tuples to be swept.
  """
  if isinstance(config, ml_collections.ConfigDict):
    raw = config.to_dict()
  else:
    raw = dict(config)
  sec = sweep_section(raw)
  raw.pop("sweep", None)
  flat = _flatten(raw)
  defaults = _flatten(config_lib.default_config().to_dict())
  axes_fields = []
  for k, v in flat.items():
    if isinstance(v, list):
      tuple_default = isinstance(defaults.get(k), tuple)
      if not tuple_default or (v and isinstance(v[0], (list, tuple))):
        if not v:
          raise ValueError(f"config field {k!r} is an empty list; a swept field needs values")
        axes_fields.append(k)
  zipped = [tuple(z) for z in sec["zip"]]
  in_zip = set()
  axes = []
  for group in zipped:
    for f in group:
      if f not in axes_fields:
        raise ValueError(f"sweep.zip names {f!r}, which is not a swept (list-valued) field; "
                         f"swept fields: {axes_fields}")
      if f in in_zip:
        raise ValueError(f"sweep.zip names {f!r} twice")
      in_zip.add(f)
    lens = {f: len(flat[f]) for f in group}
    if len(set(lens.values())) != 1:
      raise ValueError(f"sweep.zip group {group} has lists of different lengths {lens}")
    axes.append((group, list(zip(*[flat[f] for f in group]))))
  for f in axes_fields:
    if f not in in_zip:
      axes.append(((f,), [(v,) for v in flat[f]]))
  out = []
  for combo in itertools.product(*[vals for _, vals in axes]):
    cfg = {}
    for k, v in flat.items():
      if k not in axes_fields:
        axes_lib.set_dotted(cfg, k, v)
    swept = {}
    for (fields, _), values in zip(axes, combo):
      for f, v in zip(fields, values):
        axes_lib.set_dotted(cfg, f, tuple(v) if isinstance(v, list) else v)
        swept[f] = v
    out.append((swept, cfg))
  return out


@dataclasses.dataclass
class Group:
  """Configurations sharing one compiled program.

  ``dyns`` holds one entry per training (stacked along axis 0). ``members``, when given, lists
  for each training the configurations it measures, one per entry of its shift vector (a
  training shared by configurations that differ only in ``data.shift``); ``indices`` is then
  their concatenation. Without ``members`` each configuration is one training.
  """
  static: train_lib.Static
  indices: list
  dyns: train_lib.Dynamic  # stacked along axis 0
  members: Optional[list] = None

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
  """Groups resolved configs by compiled program (see module docstring).

  With ``share_training``, configurations that differ only in ``data.shift`` share one training
  that measures the OOD metrics for each of their shifts (``Static.n_shifts``; same numbers as
  one training per shift, since the shift only moves the OOD evaluation sets). ``False`` gives
  every configuration its own training.
  """
  trainings = {}
  for i, cfg in enumerate(resolved):
    static, dyn = train_lib.from_config(cfg, return_params=False)
    key = _shared_training_key(static, dyn) if share_training else i
    trainings.setdefault(key, []).append((i, static, dyn))
  pending = {}
  for members in trainings.values():
    _, static, _ = members[0]
    key = dataclasses.replace(static, width=0, batch=int(static.batch > 0), activations=(),
                              use_momentum=False)
    pending.setdefault(key, []).append(members)
  groups = []
  for key, trains in pending.items():
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
      d = d._replace(act_index=jnp.int32(acts.index(s.activations[0])))
      if n_shifts:  # the shift vector, padded by repeating its last strength
        shifts = [m[2].shift for m in t]
        d = d._replace(shift=jnp.stack(shifts + shifts[-1:] * (n_shifts - len(t))))
      dyns.append(d)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *dyns)
    indices = [i for t in trains for i, _, _ in t]
    members = [[i for i, _, _ in t] for t in trains] if n_shifts else None
    groups.append(Group(static, indices, stacked, members))
  return groups


# The estimate lives with the training program (``featcon.simulate`` checks it too).
bytes_per_config = train_lib.bytes_per_config


def chunk_size(static, n_configs, budget_gb, n_devices=1, max_chunk=4096):
  """Configurations per compiled call: fits the budget, a multiple of the device count, and
  as even as possible (64 configurations that need two chunks run as 2 x 32, not 50 + 14
  padded to 2 x 50: the last chunk is padded, so uneven chunks waste compute)."""
  per = bytes_per_config(static)
  fit = max(1, int(budget_gb * 2**30 // per))
  size = min(n_configs, fit, max_chunk)
  size = max(n_devices, (size // n_devices) * n_devices) if n_devices > 1 else size
  n_chunks = math.ceil(n_configs / size)
  even = math.ceil(n_configs / n_chunks)
  return min(size, math.ceil(even / n_devices) * n_devices)


@functools.lru_cache(maxsize=None)
def _dictionaries(d, k):
  """``seeds -> M`` (n, d, K) for a vector of seeds (:func:`featcon.theory.train.run_dictionary`):
  one jitted program per (d, K), shared by every group of the process."""
  static = types.SimpleNamespace(d=d, k=k)  # all that run_dictionary reads
  return jax.jit(jax.vmap(functools.partial(train_lib.run_dictionary, static)))


def _config_sharding(devices):
  return NamedSharding(Mesh(np.asarray(devices), ("config",)), PartitionSpec("config"))


def _chunk_args(group, idx, devices):
  """The arguments of a group's program for the trainings ``idx`` (one chunk)."""
  dyn = jax.tree.map(lambda a: a[idx], group.dyns)
  if len(devices) == 1:
    return (dyn,)
  # The dictionaries (a QR each) are computed unsharded and passed in: with several forced
  # host devices, XLA:CPU hangs when the LAPACK QR runs inside the sharded program (JAX
  # 0.10.2, K = 64). Same function, same numbers as inside the program.
  dicts = _dictionaries(group.static.d, group.static.k)(dyn.seed)
  return distributed.global_array((dyn, dicts), _config_sharding(devices))


def _abstract_chunk_args(group, size, devices):
  """Shapes, dtypes and shardings of :func:`_chunk_args` for a chunk of ``size`` (no data)."""
  sharding = _config_sharding(devices) if len(devices) > 1 else None
  spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
  dyn = jax.tree.map(lambda a: spec((size,) + a.shape[1:], a.dtype), group.dyns)
  if len(devices) == 1:
    return (dyn,)
  return (dyn, spec((size, group.static.d, group.static.k), jnp.float32))


class Program(NamedTuple):
  """A group's compiled program and its chunking (:func:`compile_group`)."""
  compiled: Any
  compile_s: float
  size: int              # trainings per chunk
  n_chunks: int
  bar: progress_lib.Bar  # the progress bar the program reports to (disabled: no bar)


def compile_group(group, *, budget_gb=4.0, max_chunk=4096, progress=True, desc="group",
                  log=None):
  """Compiles ``jit(vmap(train))`` of a group for its chunk shape (:func:`chunk_size`) from
  abstract arguments: nothing runs, so it can overlap another group's training
  (:func:`run`). Returns a :class:`Program`."""
  # The progress callback is part of the compiled program, which every process must share;
  # with several processes there is no bar.
  progress = progress and jax.process_count() == 1
  devices = jax.devices()
  size = chunk_size(group.static, group.n_trainings, budget_gb, len(devices), max_chunk)
  n_chunks = math.ceil(group.n_trainings / size)
  bar = progress_lib.Bar(n_chunks * group.static.n_logs, desc, progress, unit="log")
  train = train_lib.make_train(group.static, on_log=bar if progress else None)
  if log:
    log(f"compiling {desc} ...")
  tc = time.perf_counter()
  lowered = jax.jit(jax.vmap(train)).lower(*_abstract_chunk_args(group, size, devices))
  compiled = lowered.compile(train_lib.compiler_options())
  compile_s = time.perf_counter() - tc
  if log:
    log(f"compiled {desc} in {compile_s:.1f}s")
  return Program(compiled, compile_s, size, n_chunks, bar)


def run_group(group, *, budget_gb=4.0, max_chunk=4096, progress=True, desc="group",
              chunk_prefix=None, log=None, program=None, while_running=None):
  """Runs one group in equal chunks, sharded over all devices; returns numpy metrics.

  With several processes (``jax.distributed``) the devices are the global ones: every process
  transfers only the configurations its own devices hold, and every process gets all metrics
  back; process 0 writes the chunk files.

  With ``chunk_prefix``, each finished chunk is saved (atomically) as
  ``<prefix>.chunk<size>-<i>.npz`` and reloaded instead of recomputed on a rerun, so an
  interrupted large group loses at most the chunk in flight.

  With ``progress``, the bar (tqdm) starts once the program is compiled, so its rate and ETA
  count training only; ``log`` (if given) reports the compile and its duration.

  ``program``, if given, is the group's :func:`compile_group` made beforehand with the same
  budget and chunk limit; otherwise the group compiles when its first chunk needs computing.
  ``while_running``, if given, is called once right after the first computed chunk is
  dispatched, i.e. while the devices train it (JAX dispatches asynchronously), e.g. to compile
  the next group.

  Returns:
    (metrics dict of arrays [config, log, ...] in the order of ``group.indices``,
    diverged_step array [config], timing dict: ``wall_s`` (seconds in this call),
    ``compile_s`` (the compile's duration; part of ``wall_s`` unless ``compiled_ahead``),
    ``ahead_s`` (seconds of ``wall_s`` spent in ``while_running``), chunking and counts).
  """
  n = group.n_trainings
  devices = jax.devices()
  size = chunk_size(group.static, n, budget_gb, len(devices), max_chunk)
  n_chunks = math.ceil(n / size)
  if program is not None and (program.size, program.n_chunks) != (size, n_chunks):
    raise ValueError(f"program compiled for {program.n_chunks} chunk(s) of {program.size}, "
                     f"the group needs {n_chunks} of {size} (budget_gb={budget_gb}, "
                     f"max_chunk={max_chunk})")
  compiled_ahead = program is not None
  done_before = 0
  outs, divs = [], []
  t0 = time.perf_counter()
  ahead_s = 0.0
  for c in range(n_chunks):
    keep = (c * size + np.arange(size)) < n
    cpath = f"{chunk_prefix}.chunk{size}-{c}.npz" if chunk_prefix else None
    z = io.load_cache_npz(cpath, keys=("__diverged",)) if cpath and distributed.agree(os.path.exists(cpath)) \
        else None  # a corrupt chunk is only a cache: warned about, removed and recomputed
    if z is not None:
      outs.append({k: v for k, v in z.items() if k != "__diverged"})
      divs.append(z["__diverged"])
      done_before += group.static.n_logs
      continue
    if program is None:
      program = compile_group(group, budget_gb=budget_gb, max_chunk=max_chunk,
                              progress=progress, desc=desc, log=log)
    program.bar.start(initial=done_before)
    idx = np.arange(c * size, (c + 1) * size)
    idx = np.minimum(idx, n - 1)  # pad the last chunk by repeating its last config
    m, final = program.compiled(*_chunk_args(group, idx, devices))
    if while_running is not None:
      ta = time.perf_counter()
      while_running()
      ahead_s, while_running = time.perf_counter() - ta, None
    m, div = distributed.gather((m, final["diverged_step"]))
    outs.append({k: np.asarray(v)[keep] for k, v in m.items()})
    divs.append(np.asarray(div)[keep])
    if cpath and distributed.is_main():
      io.atomic_write(cpath, lambda f: np.savez(f, __diverged=divs[-1], **outs[-1]),
                      binary=True)
  if program is not None:
    program.bar.close()
  metrics = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
  metrics, divs = group.per_config(metrics, np.concatenate(divs))
  timing = {"wall_s": time.perf_counter() - t0,
            "compile_s": program.compile_s if program is not None else 0.0,
            "compiled_ahead": compiled_ahead, "ahead_s": ahead_s, "chunk": size,
            "chunks": n_chunks, "configs": len(group.indices), "trainings": n}
  return metrics, divs, timing


def run_groups(groups, *, budget_gb=4.0, max_chunk=4096, progress=True, group_dir=None,
               log=lambda s: None):
  """Runs groups in turn and yields ``(group, metrics, diverged, timing)`` for each as it
  finishes (:func:`run_group`'s results), so the caller can save it before the next one runs.

  Each next group that still has work compiles while the previous one trains
  (:func:`compile_group` as :func:`run_group`'s ``while_running``). With ``group_dir``, a group
  whose ``<group_dir>/<key>.json`` exists is loaded instead (its timing gains
  ``resumed: True``; a corrupt one is recomputed), and chunk files go under ``group_dir``.
  """
  descs = [f"group {g_i + 1}/{len(groups)} ({len(g.indices)} configs)"
           for g_i, g in enumerate(groups)]
  paths = [os.path.join(group_dir, g.key) if group_dir else None for g in groups]
  programs = {}

  def compile_ahead(g_i):
    """``g_i``'s program, to compile while group ``g_i - 1`` trains (None: nothing to compile:
    the last group, or one finished earlier)."""
    if g_i >= len(groups) or (paths[g_i] and os.path.exists(paths[g_i] + ".json")):
      return None
    def compile_next():
      programs[g_i] = compile_group(groups[g_i], budget_gb=budget_gb, max_chunk=max_chunk,
                                    progress=progress, desc=descs[g_i])
    return compile_next

  for g_i, group in enumerate(groups):
    path, desc = paths[g_i], descs[g_i]
    done = _load_group(path, log) if path and distributed.agree(os.path.exists(path + ".json")) else None
    if done is not None:
      metrics, div, timing = done
      log(f"{desc}: done earlier, skipped")
      yield group, metrics, div, dict(timing, resumed=True)
      continue
    program = programs.pop(g_i, None)
    if program is not None:
      log(f"compiled {desc} in {program.compile_s:.1f}s while the previous group trained")
    metrics, div, timing = run_group(group, budget_gb=budget_gb, max_chunk=max_chunk,
                                     progress=progress, desc=desc, chunk_prefix=path, log=log,
                                     program=program, while_running=compile_ahead(g_i + 1))
    log(f"{desc}: {timing['wall_s']:.1f}s (compile {timing['compile_s']:.1f}s"
        f"{' ahead' if timing['compiled_ahead'] else ''}, "
        f"{timing['chunks']} chunk(s) of {timing['chunk']})")
    yield group, metrics, div, timing


def _hash(obj):
  return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _load_group(path, log):
  """(metrics, diverged, timing) of a finished group, or None when its files are corrupt (then
  removed, with a warning: the group is recomputed)."""
  try:
    z = io.load_npz(path + ".npz", keys=("__diverged",))
    info = io.read_json(path + ".json")
    timing = info["timing"]
  except (io.CorruptFileError, FileNotFoundError, KeyError, TypeError) as e:
    log(f"warning: finished group {path!r} cannot be read ({e}); recomputing the group")
    for ext in (".json", ".npz"):
      if os.path.exists(path + ext):
        os.remove(path + ext)
    return None
  return {k: v for k, v in z.items() if k != "__diverged"}, z["__diverged"], timing


def run(config, workdir=None, progress=None, log=print):
  """Runs a sweep; writes results into ``workdir`` when given (resumable). Returns a DataFrame.

  Workdir layout: ``config.json`` (sweep config, expansion hash, versions),
  ``groups/<key>.npz`` + ``groups/<key>.json`` (finished groups, written atomically),
  and the results of :func:`featcon.theory.results.write_outputs` (``results.csv``,
  ``trajectories.npz``, ``summary.md`` and figures).
  A rerun skips finished groups (a corrupt one is recomputed); a different config in an
  existing workdir is refused, naming each differing field, except for the options in
  :data:`RESULT_INVARIANT`. Configurations estimated to need more device memory than
  ``sweep.memory_budget_gb`` are refused before anything is written or compiled.
  """
  sec = sweep_section(config)
  progress = sec["progress"] if progress is None else progress
  expanded = expand(config)
  resolved = [config_lib.resolve(cfg) for _, cfg in expanded]
  plain = _plain(config)
  resolved_dicts = [r.to_dict() for r in resolved]
  fingerprint = _hash([io.result_fields(plain, RESULT_INVARIANT), resolved_dicts])
  groups = make_groups(resolved)
  for group in groups:
    check_memory(group.static, sec["memory_budget_gb"])
  train_lib.compiler_options()  # a bad $FEATCON_THEORY_XLA_OPT_LEVEL fails before any work
  distributed.warn_if_one_cpu_device()
  if not distributed.is_main():
    log = lambda s: None  # pylint: disable=unnecessary-lambda-assignment
  log(f"sweep: {len(resolved)} configurations in {len(groups)} compiled group(s) on "
      f"{jax.device_count()} {jax.default_backend()} device(s)")
  if workdir:
    cpath = os.path.join(workdir, "config.json")
    if distributed.agree(os.path.exists(cpath)):
      old = io.read_json(cpath, fix="delete it (or the whole workdir) and rerun the sweep; "
                         "finished groups under groups/ are reused only with a valid config.json")
      if not isinstance(old, dict) or "config" not in old:
        raise io.CorruptFileError(f"{cpath!r} holds no 'config' entry; delete it (or the "
                                  "whole workdir) and rerun the sweep")
      legacy = _hash([old["config"], resolved_dicts])  # fingerprints of featcon <= 0.x
      if old.get("fingerprint") not in (fingerprint, legacy):
        diff = io.config_diff(old["config"], plain, RESULT_INVARIANT)
        what = (io.format_diff(diff) if diff else
                "  (no field of the sweep config differs: the resolved configurations do, "
                "e.g. after a change of featcon's defaults)")
        raise io.ConfigMismatchError(
            f"workdir {workdir!r} holds results of a different config:\n{what}\n"
            f"use a new --workdir or delete it (sweep options that do not change results, "
            f"{', '.join(RESULT_INVARIANT)}, may differ)")
    elif distributed.is_main():
      meta = {"config": plain, "fingerprint": fingerprint, "versions": io.versions(),
              "n_configs": len(resolved)}
      io.atomic_write(cpath, lambda f: json.dump(meta, f, indent=2, default=str))
    os.makedirs(os.path.join(workdir, "groups"), exist_ok=True)

  n = len(resolved)
  all_metrics = [None] * n
  diverged = np.full(n, -1, np.int64)
  timings = {}
  group_dir = os.path.join(workdir, "groups") if workdir else None
  for group, metrics, div, timing in run_groups(
      groups, budget_gb=sec["memory_budget_gb"], max_chunk=sec["max_chunk"], progress=progress,
      group_dir=group_dir, log=log):
    timings[group.key] = timing
    if group_dir and not timing.get("resumed") and distributed.is_main():
      path = os.path.join(group_dir, group.key)
      io.atomic_write(path + ".npz", lambda f: np.savez(
          f, __diverged=div, **metrics), binary=True)
      info = {"static": dataclasses.asdict(group.static), "indices": group.indices,
              "timing": timing}
      io.atomic_write(path + ".json", lambda f: json.dump(info, f, default=str))
      for f in os.listdir(group_dir):
        if f.startswith(group.key + ".chunk"):
          os.remove(os.path.join(group_dir, f))
    for j, i in enumerate(group.indices):
      all_metrics[i] = {k: v[j] for k, v in metrics.items()}
      diverged[i] = div[j]
    if np.any(div >= 0):
      log(f"warning: {int(np.sum(div >= 0))} configuration(s) diverged (non-finite loss); "
          "their metrics are NaN after the step recorded in 'diverged_step'")

  df = results.tidy_table(expanded, all_metrics, diverged, timings)
  if workdir and distributed.is_main():
    results.write_outputs(workdir, df, expanded, all_metrics, diverged, timings, log)
  return df


def sweep(config, workdir=None, progress=None, axes=None):
  """Programmatic equivalent of ``python -m experiments.sweep``: returns the tidy DataFrame.

  Args:
    config: a sweep config (ConfigDict or nested dict); see :func:`expand` for the syntax.
    workdir: optional folder for resumable outputs.
    progress: show a progress bar per compiled group and report compiles and results on
      stderr; default ``sweep.progress`` of the config (True). ``False``: silent (messages go
      to the ``featcon.sweep`` logger).
    axes: axes to set or replace, in the command line's syntax (:mod:`featcon.theory.axes`):
      ``["seed=0,1,2", "model.activation=relu,gelu"]`` or ``{"seed": "0,1,2"}``.

  Example:
    >>> df = featcon.sweep(featcon.default_config(), axes=["seed=0,1", "model.width=64,256"])
  """
  if axes:
    config = axes_lib.apply_axes(config, axes)
  if progress is None:
    progress = bool(sweep_section(config)["progress"])
  if progress:
    log = functools.partial(progress_lib.stage, enabled=True)
  else:
    log = logging.getLogger("featcon.sweep").info
  return run(config, workdir=workdir, progress=progress, log=log)
