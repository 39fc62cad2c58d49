"""The sweep runner: compiles each planned group (:mod:`featcon.theory.plan`) as the
``jit(vmap(...))`` of its training stages (:func:`featcon.theory.train.make_stages`), runs it in
memory-sized chunks sharded over all devices, compiles the next group while the current one
trains, reports progress and resumes from finished chunks and groups.

Progress comes from the host: each chunk's log scan advances a few log steps per call
(:func:`log_calls`), and the bar moves when a call finishes. The programs hold no host
callback, so JAX's persistent compilation cache (:func:`featcon.jax_cache.enable`) can store
them and a rerun of the same sweep compiles nothing.

:func:`compile_group` (ahead of time, from abstract arguments), :func:`run_group` (one group,
chunk by chunk) and :func:`run_groups` (all groups in turn, compile-ahead and resume).
"""
import functools
import math
import os
import time
import types
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from featcon import distributed
from featcon import io
from featcon import progress as progress_lib
from featcon.theory import plan as plan_lib
from featcon.theory import program as program_lib
from featcon.theory import schema
from featcon.theory import train as theory_train


class Limits(NamedTuple):
  """How large one compiled call may be: ``sweep.memory_budget_gb`` (GiB of device memory)
  and ``sweep.max_chunk`` (configurations); and whether configurations that draw the same
  online batches share them (``sweep.share_batches``, :func:`batch_sharing`)."""
  budget_gb: float = schema.BY_NAME["sweep.memory_budget_gb"].default
  max_chunk: int = schema.BY_NAME["sweep.max_chunk"].default
  share_batches: bool = schema.BY_NAME["sweep.share_batches"].default

  @classmethod
  def of(cls, options):
    """The limits of a plan's sweep options (:attr:`featcon.theory.plan.Plan.options`)."""
    return cls(options["memory_budget_gb"], options["max_chunk"], options["share_batches"])


def chunking(group, limits, n_devices):
  """``(trainings per chunk, number of chunks)`` of a group (:func:`featcon.theory.plan.chunk_size`)."""
  size = plan_lib.chunk_size(group.static, group.n_trainings, limits.budget_gb, n_devices,
                             limits.max_chunk)
  return size, math.ceil(group.n_trainings / size)


@functools.lru_cache(maxsize=None)
def _dictionaries(d, k):
  """``seeds -> M`` (n, d, K) for a vector of seeds (:func:`featcon.theory.train.run_dictionary`):
  one jitted program per (d, K), shared by every group of the process."""
  static = types.SimpleNamespace(d=d, k=k)  # all that run_dictionary reads
  return jax.jit(jax.vmap(functools.partial(theory_train.run_dictionary, static)))


# The Dynamic fields that fix a run's online batches: the step keys come from the seed
# (featcon.theory.train.run_keys), the spurious coordinates from rho; everything else a batch
# holds is fixed by the group's Static.
BATCH_FIELDS = ("seed", "bg_label_corr")


class Sharing(NamedTuple):
  """How the configurations of a chunk share their online batches (:func:`batch_sharing`):
  ``per_batch`` configurations draw each batch, laid out ``blocked`` (configuration
  ``u * per_batch + l``) or strided (configuration ``l * (size // per_batch) + u``)."""
  per_batch: int
  blocked: bool


def chunk_indices(n, size, n_chunks):
  """(n_chunks, size): the configurations of each chunk of a group of ``n``, the last chunk
  padded by repeating the group's last configuration (its padded results are dropped)."""
  return np.minimum(np.arange(n_chunks * size), n - 1).reshape(n_chunks, size)


def batch_sharing(group, size, n_chunks):
  """The :class:`Sharing` of a group's chunks of ``size`` (as :func:`run_group` pads them), or
  None: only online groups draw a batch per step, and only a layout that every chunk follows
  compiles into one program.

  Configurations that agree in :data:`BATCH_FIELDS` draw identical batches; sharing them,
  ``advance`` draws each batch once and the hidden layer of those configurations is one
  matmul ``Z (b, K) @ [P_1 | ... | P_L]^T (K, L m)`` (and one for the weight gradient) instead
  of L small ones (:func:`shared_advance`)."""
  if group.static.regime != "online":
    return None
  n = group.n_trainings
  idx = chunk_indices(n, size, n_chunks)
  keys = np.stack([np.asarray(getattr(group.dyns, f), np.float64)[idx] for f in BATCH_FIELDS],
                  axis=-1)  # (chunks, size, fields)
  for per_batch in range(size, 1, -1):
    if size % per_batch:
      continue
    blocked = keys.reshape(n_chunks, size // per_batch, per_batch, -1)
    if (blocked == blocked[:, :, :1]).all():
      return Sharing(per_batch, True)
    strided = keys.reshape(n_chunks, per_batch, size // per_batch, -1)
    if (strided == strided[:, :1]).all():
      return Sharing(per_batch, False)
  return None


def shared_advance(advance, sharing):
  """``vmap(advance)`` over a chunk whose configurations share batches as ``sharing`` says:
  an outer ``vmap`` over the batch streams and an inner one over the configurations of a
  stream, to which the :data:`BATCH_FIELDS` are unbatched, so the draw of each batch runs
  once per stream and ``vmap``'s rule for a product of an unbatched batch with batched weights
  makes the hidden layer one wide matmul. Same signature and result layout as
  ``vmap(advance, in_axes=(0, 0, 0, None))``; the batches are the same draws."""
  L = sharing.per_batch
  inner_axes = program_lib.Dynamic(*(None if f in BATCH_FIELDS else 0
                                     for f in program_lib.Dynamic._fields))
  inner = jax.vmap(advance, in_axes=(inner_axes, 0, 0, None))
  outer = jax.vmap(inner, in_axes=(0, 0, 0, None))

  def split(a):  # (size, ...) -> (streams, L, ...)
    if sharing.blocked:
      return a.reshape((-1, L) + a.shape[1:])
    return jnp.swapaxes(a.reshape((L, -1) + a.shape[1:]), 0, 1)

  def merge(a):  # the inverse of split
    if sharing.blocked:
      return a.reshape((-1,) + a.shape[2:])
    return jnp.swapaxes(a, 0, 1).reshape((-1,) + a.shape[2:])

  def run(dyn, ctx, carry, idx):
    dyn, ctx, carry = jax.tree.map(split, (dyn, ctx, carry))
    dyn = dyn._replace(**{f: getattr(dyn, f)[:, 0] for f in BATCH_FIELDS})
    carry, out = outer(dyn, ctx, carry, idx)
    return jax.tree.map(merge, (carry, out))

  return run


def _config_sharding(devices):
  return NamedSharding(Mesh(np.asarray(devices), ("config",)), PartitionSpec("config"))


def _replicated(devices):
  return NamedSharding(Mesh(np.asarray(devices), ("config",)), PartitionSpec())


# Log steps per call of a group's ``advance`` program: at most this many calls per chunk.
MAX_CALLS = 8


def log_calls(n_logs):
  """``(log steps per call, calls)`` that cover the ``n_logs + 1`` log steps of a run: at most
  :data:`MAX_CALLS` calls of equal length, at least 2 log steps each (a scan of one step would
  be inlined by XLA and compile differently); the last call may run past ``n_logs``
  (:func:`featcon.theory.train.make_stages` pads it)."""
  total = n_logs + 1
  per_call = max(2, math.ceil(total / min(total, MAX_CALLS)))
  return per_call, math.ceil(total / per_call)


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
  """A group's compiled stages and its chunking (:func:`compile_group`)."""
  start: Any             # (dyn[, M]) -> (ctx, carry), one chunk
  advance: Any           # (dyn, ctx, carry, idx) -> (carry, metrics), ``per_call`` log steps
  finish: Any            # (dyn, ctx, carry) -> final
  compile_s: float       # lowering and compiling all three
  size: int              # trainings per chunk
  n_chunks: int
  per_call: int          # log steps per call of ``advance`` (:func:`log_calls`)
  n_calls: int
  bar: progress_lib.Bar  # the progress bar (disabled: no bar)
  stage_s: dict          # seconds to lower and compile each stage


def compile_group(group, limits=Limits(), *, progress=True, desc="group", log=None):
  """Compiles the ``jit(vmap(...))`` of a group's stages (:func:`featcon.theory.train.make_stages`)
  for its chunk shape (:func:`chunking`) from abstract arguments: nothing runs, so it can
  overlap another group's training (:func:`run`). Returns a :class:`Program`."""
  devices = jax.devices()
  size, n_chunks = chunking(group, limits, len(devices))
  per_call, n_calls = log_calls(group.static.n_logs)
  bar = progress_lib.Bar(n_chunks * group.static.n_logs, desc,
                         progress and distributed.is_main(), unit="log")
  sharing = batch_sharing(group, size, n_chunks) if limits.share_batches else None
  stages = theory_train.make_stages(group.static, weight_rows=sharing is not None)
  options = program_lib.compiler_options()
  if log:
    log(f"compiling {desc} ...")
  args = _abstract_chunk_args(group, size, devices)
  dyn = args[0]
  sharded = len(devices) > 1
  out_sh = dict(out_shardings=_config_sharding(devices)) if sharded else {}
  idx = jax.ShapeDtypeStruct((per_call,), jnp.int32,
                             sharding=_replicated(devices) if sharded else None)
  stage_s = {}

  def build(name, fn, abstract, **kw):
    t = time.perf_counter()
    compiled = jax.jit(fn, **kw).lower(*abstract).compile(options)
    stage_s[name] = time.perf_counter() - t
    return compiled

  start = build("start", jax.vmap(stages.start), args, **out_sh)
  ctx, carry = jax.eval_shape(jax.vmap(stages.start), *args)
  if sharded:
    ctx, carry = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=_config_sharding(devices)),
        (ctx, carry))
  batched_advance = (shared_advance(stages.advance, sharing) if sharing
                     else jax.vmap(stages.advance, in_axes=(0, 0, 0, None)))
  # The carry is donated: each call's carry replaces the previous one in place.
  advance = build("advance", batched_advance, (dyn, ctx, carry, idx), donate_argnums=2,
                  **out_sh)
  finish = build("finish", jax.vmap(stages.finish), (dyn, ctx, carry), **out_sh)
  compile_s = sum(stage_s.values())
  if log:
    log(f"compiled {desc} in {compile_s:.1f}s")
  return Program(start, advance, finish, compile_s, size, n_chunks, per_call, n_calls, bar,
                 stage_s)


def _run_chunk(group, program, args, devices, after_dispatch):
  """One chunk through the program: ``start``, ``advance`` call by call (all dispatched at
  once, JAX runs them in turn), ``finish``; the bar moves as each call's metrics arrive.
  ``after_dispatch()`` runs once everything is dispatched. Returns the metrics of each call
  and ``final`` (device arrays)."""
  n_logs = group.static.n_logs
  dyn = args[0]
  ctx, carry = program.start(*args)
  parts = []
  for c in range(program.n_calls):
    idx = np.arange(c * program.per_call, (c + 1) * program.per_call, dtype=np.int32)
    if len(devices) > 1:
      idx = distributed.global_array(idx, _replicated(devices))
    carry, m = program.advance(dyn, ctx, carry, idx)
    parts.append(m)
  final = program.finish(dyn, ctx, carry)
  after_dispatch()
  done = 0
  for m in parts:
    jax.block_until_ready(m)
    new = min(done + program.per_call, n_logs + 1) - max(done, 1)  # log 0 trains nothing
    program.bar(n=max(new, 0))
    done += program.per_call
  return parts, final


def run_group(group, limits=Limits(), *, progress=True, desc="group", chunk_prefix=None,
              log=None, program=None, while_running=None):
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
  size, n_chunks = chunking(group, limits, len(devices))
  if program is not None and (program.size, program.n_chunks) != (size, n_chunks):
    raise ValueError(f"program compiled for {program.n_chunks} chunk(s) of {program.size}, "
                     f"the group needs {n_chunks} of {size} ({limits})")
  compiled_ahead = program is not None
  done_before = 0
  outs, divs = [], []
  t0 = time.perf_counter()
  ahead_s = 0.0
  for c in range(n_chunks):
    keep = (c * size + np.arange(size)) < n
    cpath = f"{chunk_prefix}.chunk{size}-{c}.npz" if chunk_prefix else None
    # A chunk is only a cache: a corrupt one, or one made for other configurations (its
    # provenance stamp differs from the group's), is warned about, removed and recomputed.
    z = _load_chunk(cpath, group, int(keep.sum())) \
        if cpath and distributed.agree(os.path.exists(cpath)) else None
    if z is not None:
      outs.append({k: v for k, v in z.items() if k not in _META_KEYS})
      divs.append(z["__diverged"])
      done_before += group.static.n_logs
      continue
    if program is None:
      program = compile_group(group, limits, progress=progress, desc=desc, log=log)
    program.bar.start(initial=done_before)
    idx = chunk_indices(n, size, n_chunks)[c]
    timer = {}

    def after_dispatch():
      if while_running is not None:
        ta = time.perf_counter()
        while_running()
        timer["ahead_s"] = time.perf_counter() - ta

    parts, final = _run_chunk(group, program, _chunk_args(group, idx, devices), devices,
                              after_dispatch)
    if "ahead_s" in timer:
      ahead_s, while_running = timer["ahead_s"], None
    parts, div = distributed.gather((parts, final["diverged_step"]))
    m = {k: np.concatenate([p[k] for p in parts], axis=1)[:, :group.static.n_logs + 1]
         for k in parts[0]}
    m["step"] = np.broadcast_to(np.asarray(theory_train.log_steps(group.static)),
                                (size, group.static.n_logs + 1))
    m = {k: m[k] for k in sorted(m)}  # the key order of the one-program result
    outs.append({k: np.asarray(v)[keep] for k, v in m.items()})
    divs.append(np.asarray(div)[keep])
    if cpath and distributed.is_main():
      io.atomic_write(cpath, lambda f: np.savez(f, __diverged=divs[-1], **_stamp_of(group),
                                                **outs[-1]), binary=True)
  if program is not None:
    program.bar.close()
  metrics = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
  metrics, divs = group.per_config(metrics, np.concatenate(divs))
  timing = {"wall_s": time.perf_counter() - t0,
            "compile_s": program.compile_s if program is not None else 0.0,
            "compile_stages_s": dict(program.stage_s) if program is not None else {},
            "compiled_ahead": compiled_ahead, "ahead_s": ahead_s, "chunk": size,
            "chunks": n_chunks, "configs": len(group.indices), "trainings": n}
  return metrics, divs, timing


def run_groups(groups, limits=Limits(), *, progress=True, group_dir=None, log=lambda s: None):
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
      programs[g_i] = compile_group(groups[g_i], limits, progress=progress, desc=descs[g_i])
    return compile_next

  for g_i, group in enumerate(groups):
    path, desc = paths[g_i], descs[g_i]
    done = _load_group(path, group, log) \
        if path and distributed.agree(os.path.exists(path + ".json")) else None
    if done is not None:
      metrics, div, timing = done
      log(f"{desc}: done earlier, skipped")
      yield group, metrics, div, dict(timing, resumed=True)
      continue
    program = programs.pop(g_i, None)
    if program is not None:
      log(f"compiled {desc} in {program.compile_s:.1f}s while the previous group trained")
    metrics, div, timing = run_group(group, limits, progress=progress, desc=desc,
                                     chunk_prefix=path, log=log, program=program,
                                     while_running=compile_ahead(g_i + 1))
    log(f"{desc}: {timing_line(timing)}")
    yield group, metrics, div, timing


def seconds(s):
  """``s`` seconds for a log line: ``12.3 s``, ``0.42 s`` or ``37 ms``."""
  if s >= 10:
    return f"{s:.1f} s"
  return f"{s:.2f} s" if s >= 0.1 else f"{1000 * s:.0f} ms"


def timing_line(timing):
  """What :func:`run_group`'s ``timing`` measured, in words: the group's compile (in this call,
  or ahead, while the previous group trained) and the time from dispatching its first chunk to
  having its results, which also holds the next group's compile when that ran meanwhile (the
  devices train while the host compiles, so the two overlap)."""
  own_compile = 0.0 if timing.get("compiled_ahead") else timing["compile_s"]
  run_s = max(timing["wall_s"] - own_compile, 0.0)
  compiled = ("compiled ahead" if timing.get("compiled_ahead") else "compiled") + \
      f" in {seconds(timing['compile_s'])}"
  if timing.get("ahead_s"):
    trained = (f"trained in {seconds(run_s)} while the next group compiled "
               f"({seconds(timing['ahead_s'])} of it)")
  else:
    trained = f"trained in {seconds(run_s)}"
  return f"{compiled}, {trained}; {timing['chunks']} chunk(s) of {timing['chunk']}"


_META_KEYS = ("__diverged", io.STAMP_KEY)


def _stamp_of(group):
  """The ``.npz`` entry of a group's provenance stamp (none for a group made without one)."""
  return {io.STAMP_KEY: io.stamp_array(group.stamp)} if group.stamp is not None else {}


def _load_chunk(path, group, n):
  """A finished chunk's arrays (``n`` trainings), or None (with a warning; the file removed) when
  it is unreadable, holds arrays of another length, or carries another stamp than the group."""
  arrays = io.load_checked_cache(path, {"__diverged": ((n,), "i", False)}, stamp=group.stamp,
                                 what="sweep chunk")
  if arrays is None:
    return None
  bad = sorted(k for k, v in arrays.items()
               if k not in _META_KEYS and (v.ndim == 0 or len(v) != n))
  if bad:
    warnings.warn(f"sweep chunk: {path!r}: array {bad[0]!r} has shape {arrays[bad[0]].shape}, "
                  f"expected {n} rows; it is recomputed", RuntimeWarning, stacklevel=2)
    os.remove(path)
    return None
  return arrays


def _load_group(path, group, log):
  """(metrics, diverged, timing) of a finished group, or None when its files are unreadable,
  malformed, or carry another provenance stamp than ``group`` (then removed, with a warning
  naming the file and the reason: the group is recomputed)."""
  n = len(group.indices)
  try:
    z = io.load_npz(path + ".npz", keys=("__diverged",))
    info = io.read_json(path + ".json")
    if not isinstance(info, dict) or not isinstance(info.get("timing"), dict):
      raise io.CorruptFileError(f"{path + '.json'!r} holds no 'timing' object")
    for name, stored in ((".json", info.get("stamp")), (".npz", io.read_stamp(z))):
      diff = io.stamp_diff(stored, group.stamp) if group.stamp is not None else []
      if diff:
        raise io.CorruptFileError(f"{path + name!r} holds results of other configurations "
                                  f"({io.describe_diff(diff)})")
    io.check_arrays(path + ".npz", z, {"__diverged": ((n,), "i", False)}, "it is recomputed")
    for k, v in z.items():
      if k not in _META_KEYS and (v.ndim == 0 or len(v) != n):
        raise io.CorruptFileError(f"{path + '.npz'!r}: array {k!r} has shape {v.shape}, "
                                  f"expected {n} rows")
  except (io.CorruptFileError, FileNotFoundError) as e:
    log(f"warning: finished group {path!r} cannot be reused ({e}); recomputing the group")
    for ext in (".json", ".npz"):
      if os.path.exists(path + ext):
        os.remove(path + ext)
    return None
  return {k: v for k, v in z.items() if k not in _META_KEYS}, z["__diverged"], info["timing"]
