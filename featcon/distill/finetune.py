"""A teacher fine-tuned from released weights on broad data (``config.teacher.source =
"finetune"``): the CPU-scale stand-in for a robust pre-trained representation such as CLIP's,
whose pre-training data covers many of the shifts it is later tested on.

The released network (``models.load_pretrained(config.model.teacher)``) plus a zero-initialised
linear head is trained with softmax cross-entropy on ``config.teacher.data`` (the real benchmark:
``<objects>_all:train``, every background kind), where a fraction of every batch is corrupted
on the fly (:class:`CorruptingLoader`): image ``j`` of step ``s`` is corrupted with probability
``finetune.fraction`` by one of ``finetune.corruptions`` (uniform) at one of
``finetune.severities`` (uniform), drawn from ``(seed, s)`` alone, so a resumed run sees the same
stream. Training runs in segments of ``finetune.eval_every`` steps; after each the BatchNorm
statistics are recalibrated (:mod:`featcon.distill.batchnorm`, on ``finetune.bn_images``
images of the training stream) and the head's accuracy on ``finetune.heldout`` is appended to
``<dir>/heldout.jsonl`` (the held-out curve). Its own seed ``finetune.seed`` (not
``config.seed``) fixes the stream, so every seed's run shares one teacher. The final network, recalibrated, is the frozen
teacher; it lives in ``finetune.dir`` (shared by every run that names it) or
``<workdir>/teacher``.
"""
from __future__ import annotations

import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from featcon import io
from featcon import models
from featcon import training as train_lib
from featcon.data import corruptions as corr_lib
from featcon.data import preprocess, refs
from featcon.data.loader import Loader
from featcon.distill import batchnorm, classifier

log = logging.getLogger("featcon")
FIELDS = ("corruptions", "severities", "fraction", "eval_every", "heldout", "heldout_limit",
          "bn_images", "seed", "dir")


def _csv(s: str) -> list[str]:
  return [t.strip() for t in str(s).split(",") if t.strip()]


def settings(config) -> dict:
  """The checked ``config.teacher.finetune`` fields: corruption names (each in
  ``corruptions.CORRUPTIONS``), severities (in 1..5), fraction in [0, 1], positive intervals;
  raises ValueError naming the field, the value and what is allowed."""
  fc = config.teacher.get("finetune")
  if fc is None:
    raise ValueError("config.teacher.source='finetune' needs config.teacher.finetune (fields "
                     f"{', '.join(FIELDS)}; configs/distill/real_experiment.py has them)")
  names = _csv(fc.corruptions)
  for n in names:
    if n not in corr_lib.CORRUPTIONS:
      raise ValueError(f"config.teacher.finetune.corruptions entry {n!r} is not allowed; "
                       f"allowed: {', '.join(corr_lib.CORRUPTIONS)}")
  try:
    sev = [int(s) for s in _csv(fc.severities)]
  except ValueError:
    sev = [-1]
  if not sev or any(s not in corr_lib.SEVERITIES for s in sev):
    raise ValueError(f"config.teacher.finetune.severities={fc.severities!r} is not allowed; "
                     "allowed: a comma-separated subset of 1,2,3,4,5")
  if not 0.0 <= float(fc.fraction) <= 1.0 or (float(fc.fraction) > 0 and not names):
    raise ValueError(f"config.teacher.finetune.fraction={fc.fraction!r} is not allowed; "
                     "allowed: 0..1 (and > 0 only with corruptions)")
  for f in ("eval_every", "bn_images"):
    if int(fc[f]) <= 0:
      raise ValueError(f"config.teacher.finetune.{f}={fc[f]!r} is not allowed; allowed: > 0")
  refs.parse_ref(fc.heldout, "config.teacher.finetune.heldout")
  return {"corruptions": names, "severities": sev, "fraction": float(fc.fraction),
          "eval_every": int(fc.eval_every), "heldout": fc.heldout,
          "heldout_limit": int(fc.heldout_limit), "bn_images": int(fc.bn_images),
          "seed": int(fc.seed), "dir": fc.dir}


def teacher_dir(config, workdir: str) -> str:
  """Where the fine-tuned teacher lives: ``config.teacher.finetune.dir`` or ``workdir/teacher``."""
  d = config.teacher.finetune.get("dir", "") if config.teacher.get("finetune") else ""
  return d or os.path.join(workdir, "teacher")


def corruption_plan(seed: int, step: int, batch_size: int, names, severities,
                    fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per row of step ``step``'s batch: (corrupted?, corruption index, severity), drawn from
  ``(seed, step)`` only (the rule of the module docstring)."""
  rng = np.random.default_rng(np.random.SeedSequence([seed, 3, step]))
  on = rng.random(batch_size) < fraction
  kind = rng.integers(max(1, len(names)), size=batch_size)
  sev = np.asarray(severities)[rng.integers(len(severities), size=batch_size)]
  return on, kind, sev


class CorruptingLoader(Loader):
  """:class:`featcon.data.loader.Loader` whose training batches are corrupted on the fly by
  :func:`corruption_plan` (rows with the same corruption and severity in one
  ``corruptions.corrupt`` call, seeded by ``(seed, step, corruption, severity)``); evaluation
  batches are not corrupted."""

  def __init__(self, source, batch_size, resolution, *, names, severities, fraction, seed=0,
               workers=2):
    super().__init__(source, batch_size, resolution, augment="none", seed=seed, workers=workers)
    self.names, self.severities, self.fraction = list(names), list(severities), float(fraction)

  def train_batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
    _, idx = self.batch_indices(step)
    ex = list(self._pool.map(lambda i: self.source[int(i)], idx))
    images = np.stack([e["image"] for e in ex])
    labels = np.asarray([e["label"] for e in ex], np.int32)
    on, kind, sev = corruption_plan(self.seed, step, self.batch_size, self.names,
                                    self.severities, self.fraction)
    for k in range(len(self.names)):
      for s in self.severities:
        m = on & (kind == k) & (sev == s)
        if m.any():
          seed = int(np.random.SeedSequence([self.seed, 4, step, k, s]).generate_state(1)[0])
          images[m] = corr_lib.corrupt(images[m], self.names[k], int(s), seed=seed)
    rows = rows if rows is not None else slice(None)
    out = [preprocess.clip_preprocess(im, self.resolution) for im in images[rows]]
    return {"image": np.stack(out).astype(np.float32), "label": labels[rows]}


def _split_variables(state_or_vars):
  return ({"params": state_or_vars["params"]["encoder"],
           "batch_stats": state_or_vars["batch_stats"]},
          state_or_vars["params"]["head"])


def head_accuracy(module, variables, head, ds, image_size: int, batch_size: int = 256) -> float:
  """Accuracy of ``argmax(f(x) W + b)`` (eval mode) over every example of ``ds``."""
  fwd = jax.jit(lambda v, h, x: jnp.argmax(module.apply(v, x, train=False)[0] @ h["kernel"]
                                           + h["bias"], -1))
  right = n = 0
  for b in Loader(ds.source, batch_size, image_size).eval_iter():
    pred = np.asarray(fwd(variables, head, b["image"]))
    right += int(((pred == b["label"]) & b["valid"]).sum())
    n += int(b["valid"].sum())
  return right / max(n, 1)


def _recalibrate(module, variables, loader, n_images: int) -> dict:
  steps = max(1, n_images // loader.batch_size)
  batches = (loader.train_batch(s)["image"] for s in range(steps))
  return batchnorm.recalibrate_batch_stats(module, variables, batches)


def finetune_teacher(config, workdir: str, mesh=None) -> dict:
  """Fine-tunes (or resumes, or reads) the teacher of the module docstring; returns its frozen
  variables (encoder only, BatchNorm recalibrated)."""
  fs = settings(config)
  pc = config.teacher.pretrain
  tdir = teacher_dir(config, workdir)
  final = os.path.join(tdir, f"teacher_recalibrated_n{fs['bn_images']}.npz")
  record = os.path.join(tdir, "finetune_config.json")
  fp = io.fingerprint(_teacher_fields(config))
  if os.path.exists(record):
    old = io.read_json(record)
    if old.get("fingerprint") != fp:
      raise io.ConfigMismatchError(
          f"{record!r}: the teacher there was fine-tuned under another config:\n"
          f"{io.format_diff(io.config_diff(old.get('fields', {}), _teacher_fields(config)))}\n"
          "use another config.teacher.finetune.dir (or delete that folder)")
  module = models.make_encoder(config.model.teacher, **config.model.overrides)
  if os.path.exists(final):
    z = io.load_cache_npz(final)
    if z is not None:
      return _unflatten(z)
  os.makedirs(tdir, exist_ok=True)
  io.write_json(record, {"fingerprint": fp, "fields": _teacher_fields(config),
                         "versions": io.versions()}, indent=1)
  mesh = mesh or train_lib.make_mesh(config.num_devices)
  ds = refs.open_dataset(config, config.teacher.data, "config.teacher.data")
  heldout = refs.open_dataset(config, fs["heldout"], "config.teacher.finetune.heldout",
                              limit=fs["heldout_limit"])
  var = models.load_pretrained(config.model.teacher, config.teacher.checkpoint or None)
  params = classifier.head_params(module, var, config.data.image_size, ds.num_classes)
  tx = train_lib.make_optimizer(pc.lr, pc.weight_decay, pc.steps, pc.warmup_steps)
  step = classifier.cross_entropy_step(module, tx)

  loader = CorruptingLoader(ds.source, pc.batch_size, config.data.image_size,
                            names=fs["corruptions"], severities=fs["severities"],
                            fraction=fs["fraction"], seed=fs["seed"] + 20_000,
                            workers=config.data.workers)
  ckpt = os.path.join(tdir, "checkpoints")
  curve_path = os.path.join(tdir, "heldout.jsonl")
  curve = _read_curve(curve_path)
  # On the host: each segment's fit puts (and donates) its own device copy.
  state0 = jax.tree.map(np.asarray, train_lib.new_state(params, var.get("batch_stats"), tx))
  stops = list(range(fs["eval_every"], pc.steps, fs["eval_every"])) + [pc.steps]
  if not curve or curve[0]["step"] != 0:
    v0 = _recalibrate(module, var, loader, fs["bn_images"])
    curve.insert(0, {"step": 0, "heldout_accuracy": head_accuracy(
        module, v0, params["head"], heldout, config.data.image_size)})  # zero head: chance
  for stop in stops:
    if any(r["step"] == stop for r in curve):
      continue
    state = train_lib.fit(state0, step, train_lib.batch_stream(loader, mesh, pc.steps),
                          total_steps=pc.steps, ckpt_dir=ckpt,
                          metrics_path=os.path.join(tdir, "metrics.jsonl"), mesh=mesh,
                          checkpoint_every=stop, log_every=config.distill.log_every,
                          stop_after=stop if stop < pc.steps else -1, name="teacher_finetune")
    enc, head = _split_variables(jax.device_get(state))
    enc = _recalibrate(module, enc, loader, fs["bn_images"])
    acc = head_accuracy(module, enc, head, heldout, config.data.image_size)
    curve.append({"step": stop, "heldout_accuracy": acc})
    log.info("teacher fine-tuning: step %d, held-out (%s) head accuracy %.4f", stop,
             fs["heldout"], acc)
    io.atomic_write(curve_path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in curve)))
  enc, _ = _split_variables(train_lib.load_variables(ckpt))
  enc = _recalibrate(module, enc, loader, fs["bn_images"])
  flat = {"/".join(k): np.asarray(v) for k, v in
          traverse_util.flatten_dict(jax.device_get(enc)).items()}
  io.atomic_write(final, lambda fh: np.savez(fh, **flat), binary=True)
  return _unflatten(flat)


def _unflatten(flat) -> dict:
  return traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(flat[k]) for k in flat})


def _read_curve(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _teacher_fields(config) -> dict:
  """The config fields the fine-tuned teacher depends on (every run sharing it must agree)."""
  return {"model.teacher": config.model.teacher,
          "model.overrides": dict(config.model.overrides),
          "data.image_size": config.data.image_size, "teacher.data": config.teacher.data,
          "teacher.checkpoint": config.teacher.checkpoint,
          "teacher.pretrain": json.loads(config.teacher.pretrain.to_json_best_effort()),
          "teacher.finetune": {k: v for k, v in json.loads(
              config.teacher.finetune.to_json_best_effort()).items() if k != "dir"}}


def heldout_curve(config, workdir: str) -> list[dict]:
  """The recorded held-out curve ``[{"step", "heldout_accuracy"}]`` of the teacher."""
  return _read_curve(os.path.join(teacher_dir(config, workdir), "heldout.jsonl"))
