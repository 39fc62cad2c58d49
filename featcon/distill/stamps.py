"""What determines each artifact of a distillation run, as provenance stamps
(:func:`featcon.io.stamp`): the fields that a stage's results depend on, and the stamps that the
teacher's and the student's checkpoints carry in their orbax metadata, so that a checkpoint is
resumed from or read only under the config that made it, whatever the workdir's record files
say (docs/reliability.md).
"""
from __future__ import annotations

from featcon import io

# Options that change how a stage runs, not its results: they may differ between runs on one
# workdir. ``num_devices``: data-parallel training gives the same results on any device count up
# to the order of floating-point reductions (tests/distill/test_train.py); ``data.workers``:
# decoding threads, the batch order is fixed by the seed; checkpoint and log intervals and the
# simulated preemption ``distill.stop_after``; the batch size of frozen-feature extraction
# (eval mode: every example is computed alone).
RESULT_INVARIANT = ("num_devices", "data.workers", "distill.checkpoint_every",
                    "distill.log_every", "distill.stop_after", "probe.feature_batch_size")
# Config sections each stage's results do not depend on (later stages' settings).
# ``real_experiment`` (experiments/real_experiment.py) runs every stage: its root record
# depends on every section but the experiment's own (which jobs run and how the summary reads;
# each job has its own fingerprint, featcon/analysis/table1.py) and the reported probe.
# ``benchmark`` (experiments/digits_benchmark.py) runs distill, linear_probe and evaluate in
# each run directory.
LATER_SECTIONS = {"distill": ("probe", "eval"), "linear_probe": ("eval",), "evaluate": (),
                  "benchmark": (), "real_experiment": ("experiment", "probe.primary")}
# What a pre-trained teacher does not depend on: the student, the distillation, the probes and
# the evaluation, and the data sets only they read.
TEACHER_IGNORE = RESULT_INVARIANT + (
    "distill", "probe", "eval", "experiment", "model.student", "model.student_overrides",
    "data.distill_train", "data.distill_limit", "data.probe_train", "data.probe_val",
    "data.eval_sets", "data.eval_limit")


def result_ignore(stage: str) -> tuple[str, ...]:
  """The config fields that do not determine the results of ``stage``."""
  if stage not in LATER_SECTIONS:
    raise ValueError(f"stage={stage!r} is not allowed; allowed: {', '.join(LATER_SECTIONS)}")
  return RESULT_INVARIANT + LATER_SECTIONS[stage]


def student(config) -> dict:
  """The stamp of a distilled student's checkpoints: every field the distillation depends on
  (``result_ignore("distill")`` left out)."""
  return io.stamp(io.result_fields(config, result_ignore("distill")))


def teacher(config) -> dict:
  """The stamp of a pre-trained teacher's checkpoints (``teacher.source=pretrain``): the
  teacher's architecture, its data and pre-training settings, the image size, augmentation and
  seed (:data:`TEACHER_IGNORE` left out)."""
  return io.stamp(io.result_fields(config, TEACHER_IGNORE))
