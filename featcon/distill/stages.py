"""The stages of Section 2: a teacher (pre-trained, or trained on diverse data at CPU scale),
representation distillation into a randomly initialised student of the same architecture, and
the frozen features that linear probes read.

Distillation objective (Section 2, Appendix E.1):
``L = mean_{b,k} (s(x_b)_k - t(x_b)_k)^2 + w * sum_blocks mean (s_block - t_block)^2``
with the teacher ``t`` frozen (eval mode) and ``w`` = ``config.distill.block_weight`` (0.1 for
ViT-B/16 in the paper, 0 otherwise).
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import re
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from featcon.data import Loader, registry
from featcon.data.sources import ConcatSource
from featcon.distill import encoders
from featcon.distill import train as train_lib

log = logging.getLogger("featcon")
ROLES = ("id", "ood")
_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml_collections", "numpy",
             "tensorflow-datasets", "scikit-learn", "scikit-image", "Pillow", "featcon")


# ----------------------------------------------------------------------------- provenance
def package_versions() -> dict[str, str]:
  """Installed versions of the packages a result depends on (absent ones are omitted)."""
  out = {"python": platform.python_version()}
  for p in _PACKAGES:
    try:
      out[p] = importlib.metadata.version(p)
    except importlib.metadata.PackageNotFoundError:
      pass
  out["jax_backend"] = jax.default_backend()
  out["devices"] = str(len(jax.devices()))
  return out


def write_run_info(workdir: str, config, stage: str) -> dict:
  """Writes ``workdir/<stage>_config.json``: the config, package versions, encoder backends."""
  os.makedirs(workdir, exist_ok=True)
  info = {"stage": stage, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "config": json.loads(config.to_json_best_effort()), "versions": package_versions(),
          "encoder_backend": {m: encoders.encoder_backend(m)
                              for m in {config.model.teacher, config.model.student}}}
  with open(os.path.join(workdir, f"{stage}_config.json"), "w") as f:
    json.dump(info, f, indent=2, sort_keys=True)
  return info


def start_stage(config, workdir: str, stage: str) -> dict:
  """What every entry point does first: logging, the compilation cache, run info on disk."""
  logging.getLogger("featcon").setLevel(logging.INFO)
  train_lib.quiet_orbax_logs()
  train_lib.enable_compilation_cache()
  return write_run_info(workdir, config, stage)


# ----------------------------------------------------------------------------- data
def parse_ref(ref: str, field: str = "data set") -> tuple[str, ...]:
  """``"name:split"`` or ``"name:split:role"`` -> tuple, with a clear error otherwise."""
  parts = tuple(p.strip() for p in ref.split(":"))
  if len(parts) not in (2, 3) or not all(parts):
    raise ValueError(f"{field}={ref!r} must look like 'name:split' or 'name:split:role'")
  try:
    registry.get_spec(parts[0])
  except ValueError as e:
    raise ValueError(f"{field}={ref!r}: {e}") from None
  if len(parts) == 3 and parts[2] not in ROLES:
    raise ValueError(f"{field}={ref!r}: role={parts[2]!r} is not allowed; allowed: "
                     f"{', '.join(ROLES)}")
  return parts


def eval_refs(config) -> list[tuple[str, str, str]]:
  refs = [parse_ref(r, "config.data.eval_sets") for r in config.data.eval_sets.split(",")
          if r.strip()]
  for r in refs:
    if len(r) != 3:
      raise ValueError(f"config.data.eval_sets entry {':'.join(r)!r} needs a role "
                       f"(name:split:role, role in {ROLES})")
  return refs


def open_dataset(config, ref: str, field: str = "data set") -> registry.Dataset:
  """One data set ("name:split"), or several ("a:train,b:train") read as one source."""
  parts = [r.strip() for r in ref.split(",") if r.strip()]
  if not parts:
    raise ValueError(f"{field} is empty: give 'name:split' (comma-separated for several)")
  sets = []
  for part in parts:
    name, split = parse_ref(part, field)[:2]
    kw = {}
    if name.startswith("digits_"):
      kw = dict(config.data.digits, image_size=config.data.image_size)
    sets.append(registry.load(name, split, data_dir=config.data.data_dir or None, **kw))
  if len(sets) == 1:
    return sets[0]
  if len({(d.num_classes, d.class_groups) for d in sets}) != 1:
    raise ValueError(f"{field}={ref!r}: the data sets have different label spaces")
  return registry.Dataset("+".join(d.name for d in sets), sets[0].split,
                          ConcatSource([d.source for d in sets]), sets[0].num_classes,
                          sets[0].class_groups)


def train_loader(config, ds: registry.Dataset, batch_size: int, seed: int) -> Loader:
  return Loader(ds.source, batch_size, config.data.image_size, augment=config.data.augment,
                seed=seed, workers=config.data.workers)


# ----------------------------------------------------------------------------- models
def init_variables(module, image_size: int, seed: int) -> dict:
  """``module.init`` compiled without XLA's backend optimisations: it runs once, and at -O0
  compiling it takes a quarter of the time on CPU."""
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  key = jax.random.key(seed)
  compiled = jax.jit(module.init).lower(key, x).compile(
      compiler_options={"xla_backend_optimization_level": 0,
                        "xla_llvm_disable_expensive_passes": True})
  return compiled(key, x)


def _apply_train(module, params, batch_stats, x):
  variables = {"params": params}
  if batch_stats is not None:
    variables["batch_stats"] = batch_stats
  (emb, inter), upd = module.apply(variables, x, train=True, mutable=["batch_stats"])
  return emb, inter, upd.get("batch_stats")


def _step_common(state, grads, upd, tx):
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new = dict(state, step=state["step"] + 1, params=optax.apply_updates(state["params"], updates),
             opt_state=opt_state)
  if "batch_stats" in state:
    new["batch_stats"] = upd
  return new


def _batches(loader, mesh, total_steps):
  _, batch_sh = train_lib.shardings(mesh)
  return lambda start: loader.train_iter(start, total_steps, sharding=batch_sh)


def load_variables(ckpt_dir: str, subtree: str | None = None) -> dict:
  """``{"params", ["batch_stats"]}`` of the latest checkpoint in ``ckpt_dir``."""
  restored = train_lib.restore_latest(ckpt_dir)
  if restored is None:
    raise FileNotFoundError(f"no checkpoint under {ckpt_dir!r}: run `python -m "
                            "experiments.distill` with the same --config and --workdir first")
  state, _ = restored
  params = state["params"][subtree] if subtree else state["params"]
  out = {"params": params}
  if state.get("batch_stats"):
    out["batch_stats"] = state["batch_stats"]
  return out


def teacher_variables(config, workdir: str, mesh=None) -> dict:
  """The frozen teacher's variables, per ``config.teacher.source``:

  - "checkpoint": released pre-trained weights (the paper's CLIP teachers), via the CLIP port;
  - "pretrain": supervised pre-training of the teacher architecture plus a linear head on
    ``config.teacher.data`` (for the offline benchmark: digits on *all* background kinds, the
    CPU-scale stand-in for CLIP's diverse pre-training data), checkpointed and resumable;
  - "random": a frozen random initialisation (smoke tests only).
  """
  src = config.teacher.source
  module = encoders.make_encoder(config.model.teacher, **config.model.overrides)
  if src == "random":
    return init_variables(module, config.data.image_size, config.seed + 10_000)
  if src == "checkpoint":
    return encoders.load_pretrained(config.model.teacher, config.teacher.checkpoint)
  if src != "pretrain":
    raise ValueError(f"config.teacher.source={src!r} is not allowed; allowed: pretrain, "
                     "checkpoint, random")
  pc = config.teacher.pretrain
  ckpt = os.path.join(workdir, "teacher", "checkpoints")
  mesh = mesh or train_lib.make_mesh(config.num_devices)
  ds = open_dataset(config, config.teacher.data, "config.teacher.data")
  var = init_variables(module, config.data.image_size, config.seed + 10_000)
  emb_dim = jax.eval_shape(lambda v: module.apply(
      v, jnp.zeros((1, config.data.image_size, config.data.image_size, 3)))[0], var).shape[-1]
  params = {"encoder": var["params"],
            "head": {"kernel": jnp.zeros((emb_dim, ds.num_classes)),
                     "bias": jnp.zeros((ds.num_classes,))}}
  tx = train_lib.make_optimizer(pc.lr, pc.weight_decay, pc.steps, pc.warmup_steps)

  def step(state, batch):
    def loss_fn(p):
      emb, _, upd = _apply_train(module, p["encoder"], state.get("batch_stats"), batch["image"])
      logits = emb @ p["head"]["kernel"] + p["head"]["bias"]
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      return loss, (upd, (logits.argmax(-1) == batch["label"]).mean())
    (loss, (upd, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    return _step_common(state, grads, upd, tx), {"loss": loss, "accuracy": acc}

  loader = train_loader(config, ds, pc.batch_size, config.seed + 20_000)
  train_lib.fit(train_lib.new_state(params, var.get("batch_stats"), tx), step,
                _batches(loader, mesh, pc.steps), total_steps=pc.steps, ckpt_dir=ckpt,
                metrics_path=os.path.join(workdir, "teacher", "metrics.jsonl"), mesh=mesh,
                checkpoint_every=config.distill.checkpoint_every,
                log_every=config.distill.log_every, name="teacher")
  return load_variables(ckpt, subtree="encoder")


def init_attention_from_teacher(student_params, teacher_params):
  """Copies every parameter whose path contains "attn" from the teacher (Appendix E option)."""
  flat_t = {jax.tree_util.keystr(k): v
            for k, v in jax.tree_util.tree_flatten_with_path(teacher_params)[0]}
  def pick(path, v):
    key = jax.tree_util.keystr(path)
    # A copy: the student's state is donated to the step, the teacher's buffers are not.
    return jnp.array(flat_t[key], copy=True) if "attn" in key and key in flat_t else v
  return jax.tree_util.tree_map_with_path(pick, student_params)


def distill_loss(s_emb, s_inter, t_emb, t_inter, block_weight: float):
  """Final-representation MSE plus ``block_weight`` x the sum of per-block MSEs ("blockN")."""
  final = jnp.mean(jnp.square(s_emb - t_emb))
  blocks = sorted(k for k in t_inter if re.fullmatch(r"block\d+", k))
  block = sum((jnp.mean(jnp.square(s_inter[k] - t_inter[k])) for k in blocks),
              jnp.zeros(())) if block_weight and blocks else jnp.zeros(())
  return final + block_weight * block, final


def distill(config, workdir: str, mesh=None) -> dict:
  """Representation distillation (Section 2): returns the student's variables."""
  dc = config.distill
  mesh = mesh or train_lib.make_mesh(config.num_devices)
  teacher_vars = teacher_variables(config, workdir, mesh)
  teacher = encoders.make_encoder(config.model.teacher, **config.model.overrides)
  student = encoders.make_encoder(config.model.student, **config.model.student_overrides)
  svars = init_variables(student, config.data.image_size, config.seed)
  params = svars["params"]
  if dc.init_attention_from_teacher:
    params = init_attention_from_teacher(params, teacher_vars["params"])
  tx = train_lib.make_optimizer(dc.lr, dc.weight_decay, dc.steps, dc.warmup_steps)

  def step(state, batch, tvars):
    x = batch["image"]
    t_emb, t_inter = teacher.apply(tvars, x, train=False)
    t_emb, t_inter = jax.lax.stop_gradient((t_emb, t_inter))
    def loss_fn(p):
      s_emb, s_inter, upd = _apply_train(student, p, state.get("batch_stats"), x)
      loss, final = distill_loss(s_emb, s_inter, t_emb, t_inter, dc.block_weight)
      return loss, (upd, final)
    (loss, (upd, final)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    return _step_common(state, grads, upd, tx), {"loss": loss, "mse_final": final}

  ds = open_dataset(config, config.data.distill_train, "config.data.distill_train")
  loader = train_loader(config, ds, dc.batch_size, config.seed)
  ckpt = os.path.join(workdir, "student", "checkpoints")
  train_lib.fit(train_lib.new_state(params, svars.get("batch_stats"), tx), step,
                _batches(loader, mesh, dc.steps), total_steps=dc.steps, ckpt_dir=ckpt,
                metrics_path=os.path.join(workdir, "student", "metrics.jsonl"), mesh=mesh,
                checkpoint_every=dc.checkpoint_every, log_every=dc.log_every,
                stop_after=dc.stop_after, name="distill", consts=(teacher_vars,))
  return load_variables(ckpt)


# ----------------------------------------------------------------------------- features
def _pool(x):
  x = jnp.asarray(x)
  return x if x.ndim == 2 else x.reshape(x.shape[0], -1, x.shape[-1]).mean(axis=1)


def extract_features(module, variables, ds: registry.Dataset, config,
                     representation: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
  """Frozen features (eval mode) of every example: the embedding, or a named intermediate
  (token/spatial axes mean-pooled). Returns (features float32 (N, D), labels (N,))."""
  fc = config.probe
  mesh = train_lib.make_mesh(config.num_devices)
  repl, batch_sh = train_lib.shardings(mesh)
  bs = fc.feature_batch_size
  bs = max(len(mesh.devices.flat), bs - bs % len(mesh.devices.flat))

  @jax.jit
  def fwd(v, x):
    emb, inter = module.apply(v, x, train=False)
    return emb if representation == "embedding" else _pool(inter[representation])

  variables = jax.device_put(variables, repl)
  feats, labels = [], []
  loader = Loader(ds.source, bs, config.data.image_size, workers=config.data.workers)
  for batch in loader.eval_iter(sharding=batch_sh):
    valid = np.asarray(batch["valid"])
    feats.append(np.asarray(fwd(variables, batch["image"]))[valid])
    labels.append(np.asarray(batch["label"])[valid])
  return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


def cached_features(module, variables, ds, config, cache_dir: str,
                    representation: str = "embedding"):
  """extract_features, cached as ``cache_dir/<name>_<split>.npz`` (never recomputed)."""
  path = os.path.join(cache_dir, f"{ds.name}_{ds.split}_{representation}.npz")
  if os.path.exists(path):
    with np.load(path) as z:
      return z["features"], z["labels"]
  f, y = extract_features(module, variables, ds, config, representation)
  os.makedirs(cache_dir, exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, features=f, labels=y)
  os.replace(tmp, path)
  return f, y


def pixel_features(ds: registry.Dataset, config) -> tuple[np.ndarray, np.ndarray]:
  """Flattened CLIP-normalised pixels (the input of the baseline "standard models")."""
  loader = Loader(ds.source, 256, config.data.image_size, workers=config.data.workers)
  feats, labels = [], []
  for b in loader.eval_iter():
    feats.append(b["image"][b["valid"]].reshape(int(b["valid"].sum()), -1))
    labels.append(b["label"][b["valid"]])
  return np.concatenate(feats), np.concatenate(labels)


def model_variables(config, workdir: str, which: str) -> tuple[Any, dict]:
  """(module, variables) of the frozen "teacher" or distilled "student" of a finished run."""
  if which == "teacher":
    module = encoders.make_encoder(config.model.teacher, **config.model.overrides)
    if config.teacher.source == "pretrain":
      return module, load_variables(os.path.join(workdir, "teacher", "checkpoints"), "encoder")
    return module, teacher_variables(config, workdir)
  if which == "student":
    module = encoders.make_encoder(config.model.student, **config.model.student_overrides)
    return module, load_variables(os.path.join(workdir, "student", "checkpoints"))
  raise ValueError(f"model={which!r} is not allowed; allowed: teacher, student")
