"""The offline benchmark over architectures and seeds: distil -> probe -> evaluate for each
(model, seed) of a config factory (configs/distill/digits.py's ``get_config``), then one summary over seeds (the Figure 1 / Table 1
comparison of teacher and distilled student at CPU scale).

Each run lives in ``root/<model>_s<seed>`` and resumes like the single stages; the loop over
runs is :func:`featcon.probe.orchestrator.run_jobs` (a run finished under the same config is
reused). The theory
students (mlp-relu, mlp-identity) reuse the tiny-rn teacher of the same seed (its checkpoints are
copied, not retrained). ``root/summary.json`` and ``root/summary.md`` are rewritten (atomically)
after every run.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Callable, Sequence

import numpy as np

from featcon import io
from featcon import progress as progress_lib
from featcon.distill import runs as runs_lib
from featcon.distill import student
from featcon.probe import orchestrator
from featcon.probe import stages

log = logging.getLogger("featcon")
SUMMARY_KEYS = ("id", "ood", "effective_robustness")
ms = orchestrator.mean_std


def _job(get_config: Callable, model: str, seed: int, root: str) -> orchestrator.Job:
  """The run directory ``root/<model>_s<seed>`` of ``get_config(model)`` with ``seed``."""
  config = get_config(model)
  config.seed = seed
  wd = os.path.join(root, f"{model}_s{seed}")

  def run(config, wd):
    teacher_src = os.path.join(root, f"{config.model.teacher}_s{seed}", "teacher")
    if model != config.model.teacher and os.path.isdir(teacher_src) and not os.path.isdir(
        os.path.join(wd, "teacher")):
      shutil.copytree(teacher_src, os.path.join(wd, "teacher"))
    runs_lib.start_stage(config, wd, "benchmark")
    student.distill(config, wd)
    stages.train_probes(config, wd)
    return stages.evaluate(config, wd)
  return orchestrator.Job(f"{model}_s{seed}", wd, config, run, runs_lib.RESULT_INVARIANT)


def run_one(get_config: Callable, model: str, seed: int, root: str) -> dict:
  """distil -> probe -> evaluate for ``get_config(model)`` with ``seed`` under
  ``root/<model>_s<seed>`` (reused when finished under the same config,
  :func:`featcon.probe.orchestrator.run_job`); returns the evaluation results plus the wall
  time (``seconds``)."""
  res, seconds, _ = orchestrator.run_job(_job(get_config, model, seed, root))
  return dict(res, seconds=seconds)


def summarize(results: dict, probe: str) -> tuple[str, dict]:
  """Mean and standard deviation over seeds of ID/OOD accuracy, the OOD drop and effective
  robustness, for the teacher and the student of each model.

  Args:
    results: ``{model: {seed: evaluation results}}`` (the ``rows`` of :func:`stages.evaluate`).
    probe: which probe's rows to summarise ("adamw" or "ridge").
  Returns:
    (markdown table, ``{"<model>/<teacher|student>": {key: [value per seed]}}``).
  """
  if probe not in stages.PROBE_KINDS:
    raise ValueError(f"probe={probe!r} is not allowed; allowed: {', '.join(stages.PROBE_KINDS)}")
  rows, table = {}, ["| student arch | encoder | seeds | ID acc | OOD acc | OOD drop (ID-OOD) | "
                     "eff. robustness |", "|---|---|---|---|---|---|---|"]
  for model, per_seed in results.items():
    for who in ("teacher", "student"):
      pts = [next(r for r in res["rows"] if r["model"] == who and r["probe"] == probe)
             for res in per_seed.values()]
      vals = {k: np.array([p.get(k, np.nan) for p in pts], float) for k in SUMMARY_KEYS}
      rows[f"{model}/{who}"] = {k: [float(x) for x in v] for k, v in vals.items()}
      table.append(f"| {model} | {who} | {len(pts)} | {ms(vals['id'])} | {ms(vals['ood'])} | "
                   f"{ms(vals['id'] - vals['ood'])} | {ms(vals['effective_robustness'])} |")
  return "\n".join(table), rows


def write_summary(root: str, results: dict, seconds: dict, probe: str) -> str:
  """Writes ``root/summary.json`` (rows, seconds per run, versions) and ``root/summary.md``
  atomically; returns the markdown table."""
  table, rows = summarize(results, probe)
  io.write_json(os.path.join(root, "summary.json"),
                {"probe": probe, "rows": rows, "seconds": seconds, "versions": io.versions()},
                indent=1)
  io.atomic_write(os.path.join(root, "summary.md"), lambda f: f.write(table + "\n"))
  return table


def run_benchmark(get_config: Callable, root: str, models: Sequence[str],
                  seeds: Sequence[int], probe: str = "adamw") -> str:
  """:func:`run_one` for every seed and model (seed-major, so a teacher is trained before the
  students that reuse it), the summary rewritten after each; returns the final table."""
  if probe not in stages.PROBE_KINDS:
    raise ValueError(f"probe={probe!r} is not allowed; allowed: {', '.join(stages.PROBE_KINDS)}")
  if not models or not seeds:
    raise ValueError(f"models={list(models)}, seeds={list(seeds)}: need at least one of each")
  os.makedirs(root, exist_ok=True)
  jobs = [_job(get_config, model, int(seed), root) for seed in seeds for model in models]
  for job in jobs:  # every field of every run, before the first one starts
    runs_lib.validate_config(job.config, "evaluate")
  tables = [""]

  def on_result(done, seconds):
    results = {}
    for seed in seeds:
      for model in models:
        if f"{model}_s{seed}" in done:
          results.setdefault(model, {})[int(seed)] = done[f"{model}_s{seed}"]
    tables[0] = write_summary(root, results, seconds, probe)
    log.info("summary so far:\n%s", tables[0])
  orchestrator.run_jobs(jobs, on_result)
  progress_lib.stage(f"digits_benchmark: wrote {root}/summary.json and summary.md; each run in "
                     f"{root}/<model>_s<seed>/ (results.json, results.md, scatter.png)")
  return tables[0]
