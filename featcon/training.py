"""Generic training machinery: AdamW with warmup + cosine (optax), data parallelism over all
devices (``jax.sharding``), orbax checkpoints with automatic resume, JSON-lines metrics with ETA,
and a hard stop on a non-finite loss.

A training state is a plain pytree ``{"step", "params", "batch_stats", "opt_state"}``;
``fit`` restores the latest checkpoint under ``ckpt_dir`` if there is one and continues from
its step. Batches depend only on ``(seed, step)`` (featcon.data.loader), so an interrupted and
resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from featcon import distributed
from featcon import io
from featcon.io.metrics import MetricsWriter  # the metric stream of fit (also featcon.io)
from featcon import jax_cache
from featcon import progress as progress_lib
from featcon.checkpoints import CheckpointError

log = logging.getLogger("featcon")


def enable_compilation_cache(path: str | None = None) -> str:
  """Turns on JAX's persistent compilation cache (``$FEATCON_JAX_CACHE`` or
  ``~/.cache/featcon/jax``): on a 2-core CPU, compiling a tiny encoder's step takes 5-15 s, and
  reruns (resume, seeds, tests) then skip it."""
  return jax_cache.enable(path, min_compile_s=0.5)


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (0 = all).

  The devices are the global ones: with several processes (``jax.distributed``) the batch is
  split over every process's devices, and each process loads its own rows of it
  (:meth:`featcon.data.Loader.train_iter`). Checkpoints are saved by all processes together
  (orbax), into a folder all of them see.
  """
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"num_devices={num_devices} but only {len(devices)} devices exist")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), ("data",))


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
  """(replicated, batch-sharded along the leading axis)."""
  return NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def make_optimizer(lr: float, weight_decay: float, total_steps: int, warmup_steps: int = 0,
                   optimizer: str = "adamw") -> optax.GradientTransformation:
  """AdamW (Loshchilov & Hutter 2019) or Adam with linear warmup then cosine decay to 0.

  Adam's ``weight_decay`` is L2 added to the gradient (PyTorch's Adam, the paper's DomainNet
  probe); AdamW's is decoupled.
  """
  allowed = ("adamw", "adam")
  if optimizer not in allowed:
    raise ValueError(f"optimizer={optimizer!r} is not allowed; allowed: {', '.join(allowed)}")
  warmup_steps = min(int(warmup_steps), max(total_steps - 1, 0))
  sched = optax.warmup_cosine_decay_schedule(0.0 if warmup_steps else lr, lr, warmup_steps,
                                             max(total_steps, warmup_steps + 1), 0.0)
  if optimizer == "adamw":
    return optax.adamw(sched, weight_decay=weight_decay)
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(sched))


def new_state(params, batch_stats, tx: optax.GradientTransformation) -> dict:
  """``{"step", "params", "opt_state"}`` plus ``"batch_stats"`` when the model has any."""
  state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
  if batch_stats:
    state["batch_stats"] = batch_stats
  return state


def checkpoint_manager(ckpt_dir: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(ckpt_dir),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False))


STAMP_METADATA = "featcon_stamp"  # the key of a checkpoint's provenance in orbax's metadata


def _one_line(e: BaseException, limit: int = 300) -> str:
  text = (str(e).strip().splitlines() or [""])[0]
  return f"{type(e).__name__}: {text[:limit]}"


def checkpoint_stamp(ckpt_dir: str) -> tuple[int | None, Any]:
  """``(latest step, the provenance stamp saved with it)`` of the checkpoints under
  ``ckpt_dir``: ``(None, None)`` when there is none; the stamp is None for a checkpoint saved
  without one."""
  if not os.path.isdir(ckpt_dir):
    return None, None
  mngr = checkpoint_manager(ckpt_dir)
  try:
    step = mngr.latest_step()
    if step is None:
      return None, None
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    # Reading the step metadata makes orbax warn that the item it does not restore exists.
    absl_log.setLevel(logging.ERROR)
    try:
      custom = mngr.metadata(step).custom_metadata or {}
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f"checkpoint {ckpt_dir!r} step {step}: its metadata cannot be read "
                            f"({_one_line(e)}); delete {os.path.join(ckpt_dir, str(step))!r} to "
                            f"resume from the checkpoint before it, or {ckpt_dir!r} to start "
                            "over") from e
    finally:
      absl_log.setLevel(level)
    return int(step), custom.get(STAMP_METADATA)
  finally:
    mngr.close()


def check_checkpoint(ckpt_dir: str, stamp: dict | None, *, allow_changes: bool = False,
                     fix: str = "") -> int | None:
  """Refuses to resume from or read the latest checkpoint under ``ckpt_dir`` when the
  provenance stamp saved with it (:func:`featcon.io.stamp`) differs from ``stamp``
  (:class:`featcon.io.ConfigMismatchError` naming the checkpoint folder and step and each
  differing field), or it has none (:class:`featcon.checkpoints.CheckpointError`: its metadata
  is missing or damaged). Cheap: reads orbax's metadata, not the arrays. Returns the latest
  step (None: no checkpoint)."""
  step, stored = checkpoint_stamp(ckpt_dir)
  if step is None or stamp is None:
    return step
  if stored is None and not allow_changes:
    step_dir = os.path.join(ckpt_dir, str(step))
    raise CheckpointError(
        f"checkpoint {ckpt_dir!r} step {step} carries no provenance stamp (its metadata file "
        f"is missing or damaged, or an older featcon wrote it), so the config that made it is "
        f"unknown; delete {step_dir!r} to resume from the checkpoint before it, or "
        f"{ckpt_dir!r} to start over")
  io.check_stamp(os.path.join(ckpt_dir, str(step)), stored, stamp,
                 what=f"a checkpoint (step {step})", allow_changes=allow_changes,
                 fix=fix or f"use the settings it was made with, a new --workdir, or delete "
                 f"{ckpt_dir!r} to start over")
  return step


def restore_latest(ckpt_dir: str, like: dict | None = None,
                   sharding=None, stamp: dict | None = None,
                   allow_changes: bool = False) -> tuple[dict, int] | None:
  """The latest checkpoint under ``ckpt_dir`` (into ``like``'s structure if given), or None.

  With ``stamp``, a checkpoint saved under another provenance stamp is refused
  (:func:`check_checkpoint`). An orbax error (a missing or truncated file of the checkpoint)
  is re-raised as a :class:`featcon.checkpoints.CheckpointError` naming the folder and the step,
  with orbax's error as its cause."""
  if not os.path.isdir(ckpt_dir):
    return None
  if stamp is not None:
    check_checkpoint(ckpt_dir, stamp, allow_changes=allow_changes)
  mngr = checkpoint_manager(ckpt_dir)
  step = mngr.latest_step()
  try:
    if step is None:
      return None
    try:
      if like is None:
        state = mngr.restore(step, args=ocp.args.StandardRestore())
      else:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype,
                                                               sharding=sharding), like)
        state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
          f"checkpoint {ckpt_dir!r} step {step} cannot be restored ({_one_line(e)}); delete "
          f"{os.path.join(ckpt_dir, str(step))!r} to resume from the checkpoint before it, or "
          f"{ckpt_dir!r} to start over") from e
  finally:
    mngr.close()
  return state, int(step)


def fit(state: dict, step_fn: Callable, batches: Callable[[int], Any], *, total_steps: int,
        ckpt_dir: str, metrics_path: str, mesh: Mesh, checkpoint_every: int = 500,
        log_every: int = 50, stop_after: int = -1, name: str = "train", consts=(),
        progress: bool = True, stamp: dict | None = None, allow_changes: bool = False) -> dict:
  """Run ``state, metrics = step_fn(state, batch, *consts)`` until ``total_steps``, resuming.

  Args:
    state: the initial state (used when no checkpoint exists, and as the restore template).
    step_fn: pure step; jitted here with the state replicated and the batch sharded.
    batches: ``batches(start_step)`` -> iterator of device batches from ``start_step`` on.
    total_steps: length of training.
    ckpt_dir: orbax checkpoints (the latest two are kept; the final step is always saved).
    metrics_path: JSON lines with step, metrics, learning-rate-free timing and ETA; the same
      scalars go to TensorBoard event files in ``<dir of metrics_path>/tensorboard``.
    mesh: the data-parallel mesh.
    checkpoint_every / log_every: intervals in steps.
    stop_after: if >= 0, stop (after checkpointing) once this many steps are done (simulates a
      preemption in tests).
    name: label for logs.
    consts: extra arguments of ``step_fn`` that training does not change (a frozen teacher);
      replicated, passed as jit arguments rather than baked in as constants.
    progress: a progress bar (tqdm) over the steps, started after the first step so that its
      rate and ETA leave out compiling, and a closing summary line on stderr.
    stamp: the provenance stamp (:func:`featcon.io.stamp`) of what determines the training;
      saved in every checkpoint's orbax metadata, and a checkpoint with another stamp is not
      resumed from (:func:`check_checkpoint`) unless ``allow_changes``.
    allow_changes: resume from a checkpoint made under another stamp (its later checkpoints
      carry ``stamp``).
  Returns:
    The final state (restored from the final checkpoint when training was already complete).
  Raises:
    FloatingPointError: the loss is not finite (message names the step and the value).
  """
  repl, _ = shardings(mesh)
  state = jax.device_put(state, repl)
  start = 0
  restored = restore_latest(ckpt_dir, state, repl, stamp=stamp, allow_changes=allow_changes)
  if restored is not None:
    state, start = restored
    log.info("%s: resumed from step %d (%s)", name, start, ckpt_dir)
  if start >= total_steps:
    return state
  jstep = jax.jit(step_fn, out_shardings=(repl, repl), donate_argnums=(0,))
  consts = jax.device_put(consts, repl)
  mngr = checkpoint_manager(ckpt_dir)
  writer = MetricsWriter(metrics_path)
  bar = progress_lib.Bar(total_steps, name, progress)
  t0, last_t, last_step = time.time(), time.time(), start
  step = start
  first_s, loss = None, float("nan")
  custom = {STAMP_METADATA: stamp} if stamp is not None else None
  it = batches(start)
  try:
    for batch in it:
      state, metrics = jstep(state, batch, *consts)
      step += 1
      loss = float(metrics["loss"])
      if first_s is None:
        first_s = time.time() - t0  # the first step includes compiling it
        bar.start(initial=step)
      else:
        bar()
      if not math.isfinite(loss):
        raise FloatingPointError(f"{name}: non-finite loss {loss} at step {step}")
      if step % log_every == 0 or step == total_steps:
        now = time.time()
        rate = (step - last_step) / max(now - last_t, 1e-9)
        eta = (total_steps - step) / max(rate, 1e-9)
        rec = {"stage": name, "step": step, "steps_per_s": round(rate, 3),
               "eta_s": round(eta, 1), "elapsed_s": round(now - t0, 1)}
        rec.update({k: float(v) for k, v in jax.device_get(metrics).items()})
        writer.write(rec)
        if distributed.is_main():
            log.info("%s step %d/%d loss %.5g  %.2f steps/s  ETA %.0fs", name, step,
                   total_steps, loss, rate, eta)
        last_t, last_step = now, step
      if step % checkpoint_every == 0 or step == total_steps or step == stop_after:
        mngr.save(step, args=ocp.args.StandardSave(state), force=True, custom_metadata=custom)
      if step == stop_after:
        log.info("%s: stopping after step %d (stop_after)", name, step)
        break
      if step >= total_steps:
        break
  finally:
    # An error or Ctrl-C stops the background work first (the batch-prefetch thread, the
    # TensorBoard writer, orbax): the last finished checkpoint stays as it is, and the process
    # exits with the error's own message.
    if hasattr(it, "close"):
      it.close()
    bar.close()
    writer.close()
    mngr.wait_until_finished()
    mngr.close()
  done = step - start
  if done:
    progress_lib.stage(
        f"{name}: {done} steps ({start} -> {step} of {total_steps}) in {time.time() - t0:.1f}s "
        f"(first step, compile included, {first_s:.1f}s); final loss {loss:.5g}; metrics in "
        f"{metrics_path} and {writer.tb_dir}", progress)
  return state


def quiet_orbax_logs():
  """Orbax logs several INFO lines per save/restore through absl; keep featcon's own."""
  for name in ("orbax", "absl"):
    logging.getLogger(name).setLevel(logging.WARNING)


def init_variables(module, image_size: int, seed: int) -> dict:
  """``module.init`` compiled without XLA's backend optimisations: it runs once, and at -O0
  compiling it takes a quarter of the time on CPU."""
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  key = jax.random.key(seed)
  compiled = jax.jit(module.init).lower(key, x).compile(
      compiler_options={"xla_backend_optimization_level": 0,
                        "xla_llvm_disable_expensive_passes": True})
  return compiled(key, x)


def apply_train(module, params, batch_stats, x):
  """``module.apply`` in train mode: (embedding, intermediates, updated batch_stats or None)."""
  variables = {"params": params}
  if batch_stats is not None:
    variables["batch_stats"] = batch_stats
  (emb, inter), upd = module.apply(variables, x, train=True, mutable=["batch_stats"])
  return emb, inter, upd.get("batch_stats")


def _advance(state, params, opt_state, batch_stats):
  new = dict(state, step=state["step"] + 1, params=params, opt_state=opt_state)
  if "batch_stats" in state:
    new["batch_stats"] = batch_stats
  return new


def apply_updates(state, grads, upd, tx):
  """One optimizer step on a state of :func:`new_state`, with the new batch statistics ``upd``."""
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  return _advance(state, optax.apply_updates(state["params"], updates), opt_state, upd)


def state_step(loss_fn: Callable, state: dict, tx: optax.GradientTransformation, *args):
  """:func:`optimizer_step` on a state of :func:`new_state`.

  ``loss_fn(params, *args) -> (loss, (batch_stats, aux))`` with the batch statistics of the
  train-mode forward pass (None without BatchNorm). Returns ``(new_state, loss, aux)``.
  """
  params, opt_state, loss, (upd, aux) = optimizer_step(
      loss_fn, state["params"], state["opt_state"], tx, *args, has_aux=True)
  return _advance(state, params, opt_state, upd), loss, aux


def batch_stream(loader, mesh, total_steps):
  """``start -> iterator`` of batches sharded over ``mesh`` (the ``batches`` argument of :func:`fit`)."""
  _, batch_sh = shardings(mesh)
  return lambda start: loader.train_iter(start, total_steps, sharding=batch_sh)


def load_variables(ckpt_dir: str, subtree: str | None = None, stamp: dict | None = None) -> dict:
  """``{"params", ["batch_stats"]}`` of the latest checkpoint in ``ckpt_dir`` (with ``stamp``:
  refused when it was saved under another provenance stamp, :func:`check_checkpoint`)."""
  restored = restore_latest(ckpt_dir, stamp=stamp)
  if restored is None:
    raise FileNotFoundError(f"no checkpoint under {ckpt_dir!r}: run the stage that writes it "
                            "(e.g. `python -m experiments.distill`) with the same --config and --workdir first")
  state, _ = restored
  params = state["params"][subtree] if subtree else state["params"]
  out = {"params": params}
  if state.get("batch_stats"):
    out["batch_stats"] = state["batch_stats"]
  return out


def optimizer_step(loss_fn: Callable, params, opt_state, tx: optax.GradientTransformation,
                   *args, has_aux: bool = False):
  """One gradient step, the update rule every featcon training loop shares:
  ``g = ∇_params loss_fn(params, *args)``, ``(u, opt_state) = tx.update(g, opt_state, params)``,
  ``params ← params + u``.

  Returns ``(params, opt_state, loss)``, or ``(params, opt_state, loss, aux)`` with ``has_aux``.
  """
  out, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params, *args)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  if has_aux:
    return params, opt_state, out[0], out[1]
  return params, opt_state, out
