"""Multi-seed benchmarks over run directories: the one loop that the offline benchmark
(:mod:`featcon.probe.benchmark`) and the Table 1 experiment (:mod:`featcon.analysis.table1`) share.

A benchmark is a list of :class:`Job` s, each a config and a run directory. :func:`run_jobs` runs
them in order; a job whose directory holds ``job.json`` with the fingerprint
(:func:`featcon.io.fingerprint`) of its config (less ``Job.ignore``) and a readable
``results.json`` is reused as it is, anything else is (re)run, so a long benchmark resumes
after an interruption and never reuses results made under another config. After every job the
caller's ``on_result(results, seconds)`` rewrites its summary (atomically), so finished work is
on disk at every moment. :func:`mean_std` and :func:`seed_stats` are the summary statistics
(mean and population standard deviation over seeds).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Sequence

import numpy as np

from featcon import io

log = logging.getLogger("featcon")
JOB_RECORD = "job.json"
RESULTS = "results.json"


@dataclasses.dataclass
class Job:
  """One run directory of a benchmark.

  Attributes:
    key: the job's name in the results (e.g. ``"student/s0"``).
    workdir: its run directory.
    config: the config it runs (an ``ml_collections.ConfigDict``).
    run: ``run(config, workdir) -> results dict`` (writes ``workdir/results.json`` itself or
      not; :func:`run_jobs` writes the returned dict there).
    ignore: config fields that do not change its results (presentation, other jobs' fields).
  """
  key: str
  workdir: str
  config: Any
  run: Callable[[Any, str], dict]
  ignore: tuple[str, ...] = ()

  def fingerprint(self) -> str:
    return io.fingerprint(self.config, self.ignore)


def finished(job: Job) -> dict | None:
  """The results of ``job`` when its directory holds them under the same fingerprint, else
  None (also when a file is unreadable: the job is then rerun)."""
  rec, res = os.path.join(job.workdir, JOB_RECORD), os.path.join(job.workdir, RESULTS)
  if not (os.path.exists(rec) and os.path.exists(res)):
    return None
  try:
    record, results = io.read_json(rec), io.read_json(res)
    if not isinstance(record, dict) or record.get("fingerprint") != job.fingerprint():
      return None
    if not isinstance(results, dict):
      raise io.CorruptFileError(f"{res!r} holds no results object")
    return results
  except io.CorruptFileError as e:
    log.warning("%s: %s; rerunning it", job.key, e)
    return None


def run_job(job: Job) -> tuple[dict, float, bool]:
  """``(results, seconds, reused)``: :func:`finished`'s results, or those of ``job.run``
  (then ``results.json`` and the job record are written, the record last)."""
  prev = finished(job)
  if prev is not None:
    log.info("%s: finished earlier under this config (%s); reused", job.key, job.workdir)
    return prev, 0.0, True
  t0 = time.time()
  os.makedirs(job.workdir, exist_ok=True)
  res = job.run(job.config, job.workdir)
  seconds = time.time() - t0
  io.write_json(os.path.join(job.workdir, RESULTS), res, indent=1, sort_keys=True)
  io.write_json(os.path.join(job.workdir, JOB_RECORD),
                {"key": job.key, "fingerprint": job.fingerprint(), "seconds": round(seconds, 1),
                 "ignore": list(job.ignore), "versions": io.versions()}, indent=1)
  return res, seconds, False


def run_jobs(jobs: Sequence[Job], on_result: Callable[[dict, dict], Any] | None = None,
             deadline: float | None = None) -> tuple[dict, dict]:
  """Runs (or reuses) every job in order; after each calls ``on_result(results, seconds)``
  with ``{key: results}`` and ``{key: wall seconds}`` so far (0 for a reused job's run,
  its recorded time under ``<key>:recorded``). Keys must be unique. With ``deadline`` (a
  ``time.time()`` value), a job not finished earlier is not started after it (skipped, logged;
  a later call resumes there)."""
  keys = [j.key for j in jobs]
  if len(set(keys)) != len(keys):
    dup = sorted({k for k in keys if keys.count(k) > 1})
    raise ValueError(f"job keys {dup} are repeated; every job needs its own key")
  results, seconds = {}, {}
  for job in jobs:
    if deadline is not None and time.time() > deadline and finished(job) is None:
      log.warning("%s: not started, the deadline has passed", job.key)
      continue
    res, s, reused = run_job(job)
    results[job.key] = res
    seconds[job.key] = round(s, 1)
    if reused:
      try:
        seconds[job.key + ":recorded"] = io.read_json(
            os.path.join(job.workdir, JOB_RECORD)).get("seconds")
      except (io.CorruptFileError, AttributeError):
        pass
    if on_result is not None:
      on_result(results, seconds)
  return results, seconds


def mean_std(values) -> str:
  """``"m ± s"`` (3 decimals) of the mean and population standard deviation; NaNs propagate."""
  v = np.asarray(values, np.float64)
  return f"{v.mean():.3f} ± {v.std():.3f}"


def seed_stats(values) -> dict:
  """``{"mean", "std", "min", "max", "n"}`` of per-seed values (population std)."""
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
          "max": float(v.max()), "n": int(v.size)}
