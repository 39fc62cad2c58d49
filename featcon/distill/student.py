"""Representation distillation (Section 2, Appendix E.1): a randomly initialised student trained
to reproduce the frozen teacher's representation on in-distribution images.

Objective: ``L = mean_{b,k} (s(x_b)_k - t(x_b)_k)^2 + w * sum_blocks mean (s_block - t_block)^2``
with the teacher ``t`` in eval mode and ``w`` = ``config.distill.block_weight`` (0.1 for
ViT-B/16 in the paper, 0 otherwise).
"""
from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp

from featcon import models
from featcon import progress as progress_lib
from featcon import training as train_lib
from featcon.data import refs
from featcon.distill import batchnorm
from featcon.distill import runs
from featcon.distill import stamps
from featcon.distill import targets as targets_lib
from featcon.distill import teacher as teacher_lib


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


def distill_step(teacher, student, tx, block_weight: float):
  """The step of :func:`distill`: ``step(state, batch, teacher_variables) -> (state, metrics)``
  on a state of ``training.new_state``, one ``tx`` update of the objective above (the teacher
  in eval mode, the student in train mode); metrics ``loss`` and ``mse_final``."""
  def step(state, batch, tvars):
    x = batch["image"]
    t_emb, t_inter = teacher.apply(tvars, x, train=False)
    t_emb, t_inter = jax.lax.stop_gradient((t_emb, t_inter))
    def loss_fn(p):
      s_emb, s_inter, upd = train_lib.apply_train(student, p, state.get("batch_stats"), x)
      loss, final = distill_loss(s_emb, s_inter, t_emb, t_inter, block_weight)
      return loss, (upd, final)
    state, loss, final = train_lib.state_step(loss_fn, state, tx)
    return state, {"loss": loss, "mse_final": final}
  return step


def cached_distill_step(student, tx):
  """The step of :func:`distill` on cached teacher targets (``batch["target"]``,
  :mod:`featcon.distill.targets`): the objective above with ``block_weight = 0``."""
  def step(state, batch):
    def loss_fn(p):
      s_emb, _, upd = train_lib.apply_train(student, p, state.get("batch_stats"), batch["image"])
      final = jnp.mean(jnp.square(s_emb - batch["target"]))
      return final, (upd, final)
    state, loss, final = train_lib.state_step(loss_fn, state, tx)
    return state, {"loss": loss, "mse_final": final}
  return step


def distill(config, workdir: str, mesh=None, allow_changes: bool = False) -> dict:
  """Representation distillation (Section 2): returns the student's variables (BatchNorm
  statistics recalibrated on the distillation images when ``config.distill.bn_recalibration``,
  :mod:`featcon.distill.batchnorm`).

  The student's (and a pre-trained teacher's) checkpoints carry the provenance stamp of the
  fields they depend on (:mod:`featcon.distill.stamps`); a checkpoint under ``workdir`` made
  under another stamp is refused before any work, naming the checkpoint and each differing
  field, unless ``allow_changes`` (``--allow_config_change``: training continues from it with
  the new settings)."""
  runs.validate_config(config, "distill")  # every field, before the teacher is pre-trained
  ckpt = os.path.join(workdir, "student", "checkpoints")
  student_stamp = stamps.student(config)
  train_lib.check_checkpoint(ckpt, student_stamp, allow_changes=allow_changes)
  if config.teacher.source == "pretrain":
    train_lib.check_checkpoint(os.path.join(workdir, "teacher", "checkpoints"),
                               stamps.teacher(config), allow_changes=allow_changes)
  dc = config.distill
  if dc.get("cached_targets", False) and dc.block_weight:
    raise ValueError(f"config.distill.block_weight={dc.block_weight} is not allowed with "
                     "config.distill.cached_targets=True; allowed: 0 (only the final "
                     "representation is cached)")
  mesh = mesh or train_lib.make_mesh(config.num_devices)
  teacher_vars = teacher_lib.teacher_variables(config, workdir, mesh, allow_changes)
  teacher = models.make_encoder(config.model.teacher, **config.model.overrides)
  student = models.make_encoder(config.model.student, **config.model.student_overrides)
  svars = train_lib.init_variables(student, config.data.image_size, config.seed)
  params = svars["params"]
  if dc.init_attention_from_teacher:
    params = init_attention_from_teacher(params, teacher_vars["params"])
  tx = train_lib.make_optimizer(dc.lr, dc.weight_decay, dc.steps, dc.warmup_steps)
  ds = refs.open_dataset(config, config.data.distill_train, "config.data.distill_train",
                         limit=config.data.distill_limit)
  if dc.get("cached_targets", False):
    # The teacher's representations of the distillation set, computed once (featcon/distill/
    # targets.py); the step reads them from the batch.
    tgt, _ = targets_lib.teacher_targets(
        teacher, teacher_vars, ds, config, dc.get("targets_dir", "") or
        os.path.join(workdir, "targets"), config.data.distill_train, config.data.distill_limit)
    loader = targets_lib.TargetLoader(ds.source, tgt, dc.batch_size, config.data.image_size,
                                      augment=config.data.augment, seed=config.seed,
                                      workers=config.data.workers)
    step, consts = cached_distill_step(student, tx), ()
  else:
    loader = refs.train_loader(config, ds, dc.batch_size, config.seed)
    step, consts = distill_step(teacher, student, tx, dc.block_weight), (teacher_vars,)
  train_lib.fit(train_lib.new_state(params, svars.get("batch_stats"), tx), step,
                train_lib.batch_stream(loader, mesh, dc.steps), total_steps=dc.steps, ckpt_dir=ckpt,
                metrics_path=os.path.join(workdir, "student", "metrics.jsonl"), mesh=mesh,
                checkpoint_every=dc.checkpoint_every, log_every=dc.log_every,
                stop_after=dc.stop_after, name="distill", consts=consts, stamp=student_stamp,
                allow_changes=allow_changes)
  variables = train_lib.load_variables(ckpt, stamp=None if allow_changes else student_stamp)
  if dc.stop_after >= 0 and dc.stop_after < dc.steps:
    return variables  # not finished: recalibrate once training is complete
  variables = batchnorm.maybe_recalibrated(
      student, variables, lambda: ds, config, os.path.join(workdir, "student"),
      data_ref=f"{config.data.distill_train}|{config.data.distill_limit}")
  progress_lib.stage(f"distill: wrote {workdir}/student/ (checkpoints/, metrics.jsonl, "
                     "tensorboard/); next: python -m experiments.linear_probe with the same "
                     "--config and --workdir")
  return variables
