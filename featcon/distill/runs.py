"""A distillation run on disk: what every stage's entry point does first, and the frozen teacher
or distilled student of a finished run.

Layout of a run's workdir: ``<stage>_config.json`` (config, versions, encoder backends),
``teacher/checkpoints`` and ``teacher/metrics.jsonl`` (a pre-trained teacher),
``student/checkpoints`` and ``student/metrics.jsonl``; the probe stage adds ``features/``,
``probes/`` and the evaluation ``results.json``.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from featcon import io
from featcon import models
from featcon import training as train_lib
from featcon.distill import teacher as teacher_lib


def write_run_info(workdir: str, config, stage: str) -> dict:
  """Writes ``workdir/<stage>_config.json``: the config, package versions, encoder backends."""
  backends = {m: models.encoder_backend(m) for m in {config.model.teacher, config.model.student}}
  return io.write_run_info(workdir, config, stage, {"encoder_backend": backends})


def start_stage(config, workdir: str, stage: str) -> dict:
  """What every entry point does first: logging, the compilation cache, run info on disk."""
  logging.getLogger("featcon").setLevel(logging.INFO)
  train_lib.quiet_orbax_logs()
  train_lib.enable_compilation_cache()
  return write_run_info(workdir, config, stage)


def model_variables(config, workdir: str, which: str) -> tuple[Any, dict]:
  """(module, variables) of the frozen "teacher" or distilled "student" of a finished run."""
  if which == "teacher":
    module = models.make_encoder(config.model.teacher, **config.model.overrides)
    if config.teacher.source == "pretrain":
      return module, train_lib.load_variables(os.path.join(workdir, "teacher", "checkpoints"), "encoder")
    return module, teacher_lib.teacher_variables(config, workdir)
  if which == "student":
    module = models.make_encoder(config.model.student, **config.model.student_overrides)
    return module, train_lib.load_variables(os.path.join(workdir, "student", "checkpoints"))
  raise ValueError(f"model={which!r} is not allowed; allowed: teacher, student")
