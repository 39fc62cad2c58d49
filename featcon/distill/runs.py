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
from featcon.errors import ConfigError, WorkdirError
from featcon import training as train_lib
from featcon.data import refs
from featcon.distill import batchnorm, checks, finetune, stamps
from featcon.distill import teacher as teacher_lib


RESULT_INVARIANT = stamps.RESULT_INVARIANT
LATER_SECTIONS = stamps.LATER_SECTIONS
result_ignore = stamps.result_ignore
# The stage whose recorded config a stage checks before reading its outputs.
UPSTREAM = {"linear_probe": "distill", "evaluate": "linear_probe"}
# Fields a resumed distillation cannot change even when asked to (the checkpoint's structure).
NOT_RESUMABLE = ("model.teacher", "model.student", "model.overrides", "model.student_overrides",
                 "data.image_size")
TEACHER_SOURCES = ("pretrain", "checkpoint", "finetune", "random")
PROBE_MODELS = ("teacher", "student")


def record_path(workdir: str, stage: str) -> str:
  """``workdir/<stage>_config.json``."""
  return os.path.join(workdir, f"{stage}_config.json")


def validate_config(config, stage: str) -> None:
  """Checks every numeric and choice field (:func:`featcon.distill.checks.check_fields`) and
  every name a stage reads (encoders, teacher source, data references, probed models) before
  any work; raises :class:`featcon.errors.ConfigError` naming the field, the value and what is
  allowed."""
  checks.check_fields(config, stage)
  names = models.encoder_names()
  for field in ("model.teacher", "model.student"):
    v = config.model[field.split(".")[1]]
    if v not in names:
      raise ConfigError(f"config.{field}={v!r} is not allowed; allowed: {', '.join(names)}")
  if config.teacher.source not in TEACHER_SOURCES:
    raise ConfigError(f"config.teacher.source={config.teacher.source!r} is not allowed; "
                     f"allowed: {', '.join(TEACHER_SOURCES)}")
  fields = ["data.distill_train"]
  if config.teacher.source in ("pretrain", "finetune"):
    fields.append("teacher.data")
  if config.teacher.source == "finetune":
    finetune.settings(config)
  if stage != "distill":
    fields += ["data.probe_train", "data.probe_val"]
    probed = [m.strip() for m in config.probe.models.split(",") if m.strip()]
    bad = [m for m in probed if m not in PROBE_MODELS]
    if bad or not probed:
      raise ConfigError(f"config.probe.models={config.probe.models!r} is not allowed; allowed: "
                       f"a comma-separated subset of {', '.join(PROBE_MODELS)}")
  for field in fields:
    section, key = field.split(".")
    ref = config[section][key]
    parts = [r for r in ref.split(",") if r.strip()]
    if not parts:
      raise ConfigError(f"config.{field}={ref!r} is empty; allowed: 'name:split' "
                       "(comma-separated for several)")
    for r in parts:
      refs.parse_ref(r, f"config.{field}")
  if stage == "evaluate":
    refs.eval_refs(config)


def check_stage(config, workdir: str, stage: str, allow_changes: bool = False):
  """Refuses to run ``stage`` on a workdir whose recorded configs disagree with ``config``.

  - The earlier stage's record (``distill_config.json`` for the probes,
    ``linear_probe_config.json`` for the evaluation), when present, must agree on every field
    its results depend on: the stage reads that stage's outputs, not its own flags.
  - The stage's own earlier record (distillation checkpoints, cached probes) must agree on
    every field this stage's results depend on, unless ``allow_changes`` (then the old record
    is kept in the new one's ``history``); the evaluation reuses nothing of its own and is
    not checked against its earlier record.

  Returns:
    (the stage's earlier record or None, the allowed differences ``[(field, old, new)]``).

  Raises:
    featcon.io.ConfigMismatchError: naming each differing field with both values.
  """
  up = UPSTREAM.get(stage)
  if up:
    io.check_workdir(record_path(workdir, up), config, ignore=result_ignore(up),
                     what=f"the outputs of the {up} stage",
                     fix=f"run {stage} with the --config and overrides the {up} stage was run "
                     "with (the recorded values above), or rerun the earlier stages")
  if stage == "evaluate":
    return None, []
  rec, diff = io.check_workdir(
      record_path(workdir, stage), config, ignore=result_ignore(stage),
      allow_changes=allow_changes, what=f"the {stage} stage's outputs",
      fix="use the recorded values, a new --workdir, or pass --allow_config_change to continue "
      "with the new settings (the record keeps the old ones)")
  if stage == "distill" and diff:
    fixed = [d for d in diff if any(d[0] == f or d[0].startswith(f + ".") for f in NOT_RESUMABLE)]
    if fixed:
      raise io.ConfigMismatchError(
          f"{record_path(workdir, stage)!r}: a distillation cannot be resumed with another "
          f"architecture or image size ({io.describe_diff(fixed)}); use a new --workdir")
  return rec, diff


def write_run_info(workdir: str, config, stage: str, previous: dict | None = None,
                   changes=()) -> dict:
  """Writes ``workdir/<stage>_config.json``: the config, its fingerprint (of the fields that
  determine the stage's results), package versions, encoder backends, and the ``history`` of
  earlier records that continued under other settings."""
  backends = {m: models.encoder_backend(m) for m in {config.model.teacher, config.model.student}}
  history = (previous or {}).get("history", [])
  if not isinstance(history, list):
    raise io.CorruptFileError(f"{record_path(workdir, stage)!r}: its 'history' is not a list; "
                              "delete it (and the outputs next to it) and rerun, or use a new "
                              "workdir")
  history = list(history)
  if previous and changes:
    history.append({k: v for k, v in previous.items() if k != "history"})
  extra = {"encoder_backend": backends, "fingerprint": io.fingerprint(config, result_ignore(stage)),
           "result_invariant": list(result_ignore(stage)), "history": history,
           "changed": [{"field": f, "recorded": o, "now": n} for f, o, n in changes]}
  return io.write_run_info(workdir, config, stage, extra)


def _probed(config) -> list[str]:
  return [m.strip() for m in config.probe.models.split(",") if m.strip()]


def require_outputs(config, workdir: str, stage: str) -> None:
  """Refuses a workdir that lacks what ``stage`` reads (a :class:`featcon.errors.WorkdirError`
  naming the folder and the command that makes it), and a distilled student whose checkpoint
  was made under another config (:func:`featcon.training.check_checkpoint`), before any work.

  - ``linear_probe`` and ``evaluate`` probing the student need its checkpoints
    (``experiments.distill``);
  - ``evaluate`` needs every probe (``probes/<model>_<kind>.npz`` and ``.json``,
    ``experiments.linear_probe``).
  """
  if stage not in ("linear_probe", "evaluate"):
    return
  same = "with the same --config, overrides and --workdir"
  if "student" in _probed(config):
    ckpt = os.path.join(workdir, "student", "checkpoints")
    step = train_lib.check_checkpoint(
        ckpt, stamps.student(config),
        fix=f"run {stage} with the --config and overrides the distillation was run with, or "
        "rerun `python -m experiments.distill` in a new --workdir")
    if step is None:
      raise WorkdirError(f"{workdir!r} holds no distilled student (no checkpoint under "
                         f"{ckpt!r}); run `python -m experiments.distill` {same} first")
    if step < config.distill.steps:
      raise WorkdirError(f"{ckpt!r}: the distillation stopped at step {step} of "
                         f"{config.distill.steps}; rerun `python -m experiments.distill` {same} "
                         "to finish it first")
  if stage == "evaluate":
    missing = [os.path.join("probes", f"{m}_{k}{ext}") for m in _probed(config)
               for k in ("adamw", "ridge") for ext in (".npz", ".json")
               if not os.path.exists(os.path.join(workdir, "probes", f"{m}_{k}{ext}"))]
    if missing:
      raise WorkdirError(f"{workdir!r} lacks the trained probes {', '.join(missing)}; run "
                         f"`python -m experiments.linear_probe` {same} first")


def start_stage(config, workdir: str, stage: str, allow_changes: bool = False) -> dict:
  """What every entry point does first: logging, the compilation cache, validation of the
  config (:func:`validate_config`), of the earlier stages' outputs (:func:`require_outputs`)
  and of the workdir (:func:`check_stage`), then the run info
  on disk (written only after both checks pass). A probe stage continuing under other settings
  drops its cached probes (they were made under the old ones)."""
  logging.getLogger("featcon").setLevel(logging.INFO)
  validate_config(config, stage)
  require_outputs(config, workdir, stage)
  previous, changes = check_stage(config, workdir, stage, allow_changes)
  if changes:
    logging.getLogger("featcon").warning("%s: continuing with changed settings:\n%s", stage,
                                         io.format_diff(changes))
    if stage == "linear_probe":
      probes = os.path.join(workdir, "probes")
      for f in os.listdir(probes) if os.path.isdir(probes) else ():
        os.remove(os.path.join(probes, f))
  train_lib.quiet_orbax_logs()
  train_lib.enable_compilation_cache()
  return write_run_info(workdir, config, stage, previous, changes)


def model_variables(config, workdir: str, which: str) -> tuple[Any, dict]:
  """(module, variables) of the frozen "teacher" or distilled "student" of a finished run (with
  recalibrated BatchNorm statistics when ``config.distill.bn_recalibration``)."""
  if which == "teacher":
    module = models.make_encoder(config.model.teacher, **config.model.overrides)
    ckpt = os.path.join(workdir, "teacher", "checkpoints")
    stamp = stamps.teacher(config)
    step = train_lib.check_checkpoint(ckpt, stamp) if config.teacher.source == "pretrain" \
        else None
    if step is not None and step >= config.teacher.pretrain.steps:
      return module, teacher_lib.recalibrated(config, workdir, module, train_lib.load_variables(
          ckpt, "encoder", stamp=stamp))
    # Released weights, a random init, or a pre-training not run yet (a probe-only run of a
    # supervised row: it is trained here).
    return module, teacher_lib.teacher_variables(config, workdir)
  if which == "student":
    module = models.make_encoder(config.model.student, **config.model.student_overrides)
    variables = train_lib.load_variables(os.path.join(workdir, "student", "checkpoints"),
                                         stamp=stamps.student(config))
    return module, batchnorm.maybe_recalibrated(
        module, variables, lambda: refs.open_dataset(config, config.data.distill_train,
                                                     "config.data.distill_train",
                                                     limit=config.data.distill_limit),
        config, os.path.join(workdir, "student"),
        data_ref=f"{config.data.distill_train}|{config.data.distill_limit}")
  raise ValueError(f"model={which!r} is not allowed; allowed: teacher, student")
