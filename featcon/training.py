"""Generic training machinery: AdamW with warmup + cosine (optax), data parallelism over all
devices (``jax.sharding``), orbax checkpoints with automatic resume, JSON-lines metrics with ETA,
and a hard stop on a non-finite loss.

A training state is a plain pytree ``{"step", "params", "batch_stats", "opt_state"}``;
``fit`` restores the latest checkpoint under ``ckpt_dir`` if there is one and continues from
its step. Batches depend only on ``(seed, step)`` (featcon.data.loader), so an interrupted and
resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import json
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
import tensorboardX
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from featcon import distributed
from featcon import jax_cache
from featcon import progress as progress_lib

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


class MetricsWriter:
  """Appends one JSON line per record to ``path`` (kept across resumes) and, with
  ``tensorboard``, writes the record's numeric fields as TensorBoard scalars (tag
  ``<stage>/<field>``, at the record's ``step``) to event files in ``<dir of path>/tensorboard``
  (tensorboardX: no TensorFlow needed). ``tensorboard --logdir <workdir>`` shows every stage.
  """

  def __init__(self, path: str, tensorboard: bool = True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    self.path = path
    self.tb_dir = os.path.join(os.path.dirname(path), "tensorboard") if tensorboard else None
    self._tb = None

  def write(self, record: dict[str, Any]):
    if not distributed.is_main():  # one metrics file for a multi-process run
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
    if self.tb_dir is None or "step" not in record:
      return
    if self._tb is None:
      self._tb = tensorboardX.SummaryWriter(self.tb_dir, flush_secs=10)
    stage = record.get("stage", "train")
    for k, v in record.items():
      if k in ("stage", "step") or isinstance(v, bool) or not isinstance(v, (int, float)):
        continue
      self._tb.add_scalar(f"{stage}/{k}", float(v), int(record["step"]))

  def flush(self):
    if self._tb is not None:
      self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def checkpoint_manager(ckpt_dir: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(ckpt_dir),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False))


def restore_latest(ckpt_dir: str, like: dict | None = None,
                   sharding=None) -> tuple[dict, int] | None:
  """The latest checkpoint under ``ckpt_dir`` (into ``like``'s structure if given), or None."""
  if not os.path.isdir(ckpt_dir):
    return None
  mngr = checkpoint_manager(ckpt_dir)
  step = mngr.latest_step()
  if step is None:
    mngr.close()
    return None
  if like is None:
    state = mngr.restore(step, args=ocp.args.StandardRestore())
  else:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype,
                                                           sharding=sharding), like)
    state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  mngr.close()
  return state, int(step)


def fit(state: dict, step_fn: Callable, batches: Callable[[int], Any], *, total_steps: int,
        ckpt_dir: str, metrics_path: str, mesh: Mesh, checkpoint_every: int = 500,
        log_every: int = 50, stop_after: int = -1, name: str = "train", consts=(),
        progress: bool = True) -> dict:
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
  Returns:
    The final state (restored from the final checkpoint when training was already complete).
  Raises:
    FloatingPointError: the loss is not finite (message names the step and the value).
  """
  repl, _ = shardings(mesh)
  state = jax.device_put(state, repl)
  start = 0
  restored = restore_latest(ckpt_dir, state, repl)
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
  try:
    for batch in batches(start):
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
        mngr.save(step, args=ocp.args.StandardSave(state), force=True)
      if step == stop_after:
        log.info("%s: stopping after step %d (stop_after)", name, step)
        break
      if step >= total_steps:
        break
  finally:
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


def load_variables(ckpt_dir: str, subtree: str | None = None) -> dict:
  """``{"params", ["batch_stats"]}`` of the latest checkpoint in ``ckpt_dir``."""
  restored = restore_latest(ckpt_dir)
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
