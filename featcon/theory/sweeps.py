"""The sweep front door: ``featcon.sweep(config)`` and the work behind ``experiments.sweep``.

A config takes three forms on its way to the compiled program (docs/architecture.md): the
sweep config (a scalar :func:`featcon.theory.config.sweep_config` with ``sweep.axes``, or the
list form), the plan (:func:`featcon.theory.plan.make_plan`: every configuration, resolved and
grouped by compiled program) and each group's ``Static``/``Dynamic``
(:mod:`featcon.theory.program`), which :mod:`featcon.theory.runner` compiles and runs.
:func:`run` adds the resumable workdir (its config record is checked by
:func:`featcon.io.check_workdir`) and the outputs of :mod:`featcon.theory.results`.

What each field costs in a sweep (vmapped, padded, switched, or one compile per value) is the
"in a sweep" column of docs/config.md; docs/sweeps.md explains the grouping.
"""
import dataclasses
import functools
import logging
import os

import jax
import numpy as np

from featcon import distributed
from featcon import io
from featcon import progress as progress_lib
from featcon.theory import plan as plan_lib
from featcon.theory import program
from featcon.theory import results
from featcon.theory import runner
from featcon.theory import schema

# Sweep options that change how a sweep runs, not its results: a workdir may be resumed with
# other values (e.g. a lower memory budget after running out of memory).
RESULT_INVARIANT = schema.RESULT_INVARIANT


def _save_group(group_dir, group, metrics, div, timing):
  """Writes a finished group (``<key>.npz``, ``<key>.json``, both with the group's provenance
  stamp, :func:`featcon.theory.plan.group_stamp`) and removes its chunk files."""
  path = os.path.join(group_dir, group.key)
  stamp = {io.STAMP_KEY: io.stamp_array(group.stamp)} if group.stamp is not None else {}
  io.atomic_write(path + ".npz", lambda f: np.savez(f, __diverged=div, **stamp, **metrics),
                  binary=True)
  info = {"static": dataclasses.asdict(group.static), "indices": group.indices,
          "timing": timing, "stamp": group.stamp}
  io.write_json(path + ".json", info, default=str)
  for f in os.listdir(group_dir):
    if f.startswith(group.key + ".chunk"):
      os.remove(os.path.join(group_dir, f))


def _check_workdir(workdir, record, n_configs):
  """Refuses a workdir whose ``config.json`` records another sweep (:func:`featcon.io.check_workdir`,
  every field but :data:`RESULT_INVARIANT`); records this one in a new workdir."""
  cpath = os.path.join(workdir, "config.json")
  if distributed.agree(os.path.exists(cpath)):
    io.check_workdir(cpath, record, ignore=RESULT_INVARIANT, what="sweep results",
                     fix=f"use a new --workdir or delete {workdir!r} (sweep options that do not "
                     f"change results, {', '.join(RESULT_INVARIANT)}, may differ)")
  else:
    io.write_json(cpath, {"config": record, "versions": io.versions(), "n_configs": n_configs},
                  indent=2, default=str)
  os.makedirs(os.path.join(workdir, "groups"), exist_ok=True)


def run(config, workdir=None, progress=None, log=print, axes=None, pinned=()):
  """Runs a sweep; writes results into ``workdir`` when given (resumable). Returns a DataFrame.

  Args:
    config: a sweep config (:func:`featcon.theory.plan.make_plan`), or its
      :class:`featcon.theory.plan.Plan`.
    workdir: optional folder for resumable outputs.
    progress: progress bars; default ``sweep.progress``.
    log: where messages go.
    axes, pinned: as for :func:`featcon.theory.plan.make_plan`.

  Workdir layout: ``config.json`` (the plan's record: every field, swept ones as lists, the
  sweep options; versions), ``groups/<key>.npz`` + ``groups/<key>.json`` (finished groups,
  written atomically), and the results of :func:`featcon.theory.results.write_outputs`
  (``results.csv``, ``trajectories.npz``, ``summary.md`` and figures). A rerun skips finished
  groups (a corrupt one is recomputed); a different config in an existing workdir is refused,
  naming each differing field, except for the options in :data:`RESULT_INVARIANT`.
  Configurations estimated to need more device memory than ``sweep.memory_budget_gb`` are
  refused before anything is written or compiled.
  """
  plan = (config if isinstance(config, plan_lib.Plan)
          else plan_lib.make_plan(config, axes=axes, pinned=pinned))
  progress = plan.options["progress"] if progress is None else progress
  resolved = plan.configs
  groups = plan_lib.make_groups(resolved)
  limits = runner.Limits.of(plan.options)
  for group in groups:
    program.check_memory(group.static, limits.budget_gb, "sweep.memory_budget_gb")
  program.compiler_options()  # a bad $FEATCON_THEORY_XLA_OPT_LEVEL fails before any work
  note = distributed.one_cpu_device_note()
  if not distributed.is_main():
    log = lambda s: None  # pylint: disable=unnecessary-lambda-assignment
  log(f"sweep: {len(resolved)} configurations in {len(groups)} compiled group(s) on "
      f"{jax.device_count()} {jax.default_backend()} device(s)" + (f" ({note})" if note else ""))
  group_dir = None
  if workdir:
    _check_workdir(workdir, plan.record, len(resolved))
    group_dir = os.path.join(workdir, "groups")

  n = len(resolved)
  all_metrics = [None] * n
  diverged = np.full(n, -1, np.int64)
  timings = {}
  for group, metrics, div, timing in runner.run_groups(groups, limits, progress=progress,
                                                       group_dir=group_dir, log=log):
    timings[group.key] = timing
    if group_dir and not timing.get("resumed") and distributed.is_main():
      _save_group(group_dir, group, metrics, div, timing)
    for j, i in enumerate(group.indices):
      all_metrics[i] = {k: v[j] for k, v in metrics.items()}
      diverged[i] = div[j]
    if np.any(div >= 0):
      log(f"warning: {int(np.sum(div >= 0))} configuration(s) diverged (non-finite loss); "
          "their metrics are NaN after the step recorded in 'diverged_step'")

  df = results.tidy_table(plan.points, all_metrics, diverged, timings)
  if workdir and distributed.is_main():
    results.write_outputs(workdir, df, plan.points, all_metrics, diverged, timings, log)
  return df


def sweep(config, workdir=None, progress=None, axes=None):
  """Programmatic equivalent of ``python -m experiments.sweep``: returns the tidy DataFrame.

  Args:
    config: a sweep config (ConfigDict or nested dict): a scalar config with ``sweep.axes``,
      or fields holding lists (each list an axis; :mod:`featcon.theory.plan`).
    workdir: optional folder for resumable outputs.
    progress: show a progress bar per compiled group and report compiles and results on
      stderr; default ``sweep.progress`` of the config (True). ``False``: silent (messages go
      to the ``featcon.sweep`` logger).
    axes: axes to set or replace, in the command line's syntax (:mod:`featcon.theory.axes`):
      ``["seed=0,1,2", "model.activation=relu,gelu"]`` or ``{"seed": "0,1,2"}``.

  Example:
    >>> df = featcon.sweep(featcon.default_config(), axes=["seed=0,1", "model.width=64,256"])
  """
  plan = plan_lib.make_plan(config, axes=axes)
  if progress is None:
    progress = bool(plan.options["progress"])
  if progress:
    log = functools.partial(progress_lib.stage, enabled=True)
  else:
    log = logging.getLogger("featcon.sweep").info
  return run(plan, workdir=workdir, progress=progress, log=log)
