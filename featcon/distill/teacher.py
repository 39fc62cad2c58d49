"""The frozen teacher of Section 2: released pre-trained weights, or supervised pre-training of
the teacher architecture on a broad distribution (the CPU-scale stand-in for CLIP's data).
"""
from __future__ import annotations

import os

from featcon import models
from featcon import training as train_lib
from featcon.data import refs
from featcon.distill import batchnorm, classifier, finetune, stamps


def teacher_variables(config, workdir: str, mesh=None, allow_changes: bool = False) -> dict:
  """The frozen teacher's variables, per ``config.teacher.source``:

  - "checkpoint": released pre-trained weights (the paper's CLIP teachers), via the CLIP port;
  - "pretrain": supervised pre-training of the teacher architecture plus a linear head on
    ``config.teacher.data`` (its first ``config.teacher.data_limit`` examples when that field
    exists and is > 0, :func:`featcon.data.refs.subset`) (for the offline benchmark: digits on *all* background kinds, the
    CPU-scale stand-in for CLIP's diverse pre-training data), checkpointed and resumable;
  - "finetune": the released weights fine-tuned on ``config.teacher.data`` with on-the-fly
    corruptions, BatchNorm recalibrated (:mod:`featcon.distill.finetune`), shared by every run
    that names the same ``config.teacher.finetune.dir``;
  - "random": a frozen random initialisation (smoke tests, the random-init probe row).

  A pre-training's checkpoints carry the teacher's provenance stamp
  (:func:`featcon.distill.stamps.teacher`); one made under another is not resumed from or read
  (unless ``allow_changes``).

  With ``config.distill.bn_recalibration`` the BatchNorm statistics of a "pretrain" or "random"
  teacher are recalibrated (:mod:`featcon.distill.batchnorm`) on its training images
  (``config.teacher.data``) or on the distillation images, cached under ``workdir/teacher``.
  """
  src = config.teacher.source
  module = models.make_encoder(config.model.teacher, **config.model.overrides)
  if src == "random":
    return recalibrated(config, workdir, module, train_lib.init_variables(
        module, config.data.image_size, config.seed + 10_000))
  if src == "checkpoint":
    return models.load_pretrained(config.model.teacher, config.teacher.checkpoint or None)
  if src == "finetune":
    return finetune.finetune_teacher(config, workdir, mesh)
  if src != "pretrain":
    raise ValueError(f"config.teacher.source={src!r} is not allowed; allowed: pretrain, "
                     "checkpoint, finetune, random")
  pc = config.teacher.pretrain
  ckpt = os.path.join(workdir, "teacher", "checkpoints")
  mesh = mesh or train_lib.make_mesh(config.num_devices)
  ds = refs.open_dataset(config, config.teacher.data, "config.teacher.data",
                         limit=int(config.teacher.get("data_limit", 0)))
  var = train_lib.init_variables(module, config.data.image_size, config.seed + 10_000)
  params = classifier.head_params(module, var, config.data.image_size, ds.num_classes)
  tx = train_lib.make_optimizer(pc.lr, pc.weight_decay, pc.steps, pc.warmup_steps)
  step = classifier.cross_entropy_step(module, tx)

  loader = refs.train_loader(config, ds, pc.batch_size, config.seed + 20_000)
  train_lib.fit(train_lib.new_state(params, var.get("batch_stats"), tx), step,
                train_lib.batch_stream(loader, mesh, pc.steps), total_steps=pc.steps, ckpt_dir=ckpt,
                metrics_path=os.path.join(workdir, "teacher", "metrics.jsonl"), mesh=mesh,
                checkpoint_every=config.distill.checkpoint_every,
                log_every=config.distill.log_every, name="teacher", stamp=stamps.teacher(config),
                allow_changes=allow_changes)
  return recalibrated(config, workdir, module, train_lib.load_variables(
      ckpt, subtree="encoder", stamp=None if allow_changes else stamps.teacher(config)))


def recalibrated(config, workdir: str, module, variables: dict) -> dict:
  """A "pretrain" or "random" teacher's ``variables`` with the BatchNorm statistics of
  :func:`featcon.distill.batchnorm.maybe_recalibrated` (unchanged for released weights or when
  ``config.distill.bn_recalibration`` is 0)."""
  src = config.teacher.source
  if src not in ("pretrain", "random"):
    return variables
  ref, field, limit = ((config.teacher.data, "config.teacher.data",
                        int(config.teacher.get("data_limit", 0))) if src == "pretrain" else
                       (config.data.distill_train, "config.data.distill_train",
                        config.data.distill_limit))
  return batchnorm.maybe_recalibrated(
      module, variables, lambda: refs.open_dataset(config, ref, field, limit=limit), config,
      os.path.join(workdir, "teacher"), data_ref=f"{ref}|{limit}")
