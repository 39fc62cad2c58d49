"""The paper's Table 1 (Section 2) on real weights: a robust teacher, students distilled from it
on ID data, the rows around them, the shifts in two groups, and the mechanism
(configs/distill/real_experiment.py; entry point experiments/real_experiment.py).

Layout under ``root`` (every run directory a job of :mod:`featcon.probe.orchestrator`, reused
when finished under the same config):

- ``teacher/``: the fine-tuned teacher, trained once and shared (:mod:`featcon.distill.finetune`);
  ``targets/``: cached teacher targets per distillation set (:mod:`featcon.distill.targets`);
- ``rows/teacher``, ``rows/imagenet``: probes and evaluation of the fine-tuned teacher (with the
  pixel-ridge baseline points) and of the frozen released network;
- ``s<seed>/main`` (student), ``s<seed>/supervised``, ``s<seed>/random``;
- ``line/supervised_n<steps>``: supervised Lite0 at other step counts (the standard-model line);
- ``ablations/<name>_s<seed>``; ``analyses/`` (:func:`featcon.analysis.experiment.run`).

Definitions:

- accuracy of a row: the ``probe.primary`` linear probe (trained on ID train, selected on ID
  val) on each eval set; *ID* the ID set, *OOD* the mean over every shift, *covered* /
  *held out* the mean over each group of :func:`shift_groups`;
- effective robustness (Taori et al. 2020): ``OOD - sigmoid(a logit(ID) + b)`` with ``(a, b)``
  fitted (least squares in logit space, :func:`featcon.probe.metrics.fit_baseline`) on the
  standard models: pixel ridge probes at nested fractions of the ID training set and supervised
  Lite0 (seed 0) at every step count of ``experiment.line_steps`` and at the student's; one fit
  per OOD average (all, covered, held out);
- fair test: every seed's student ID accuracy within ``experiment.fair_gap`` of the teacher's;
- uninformative set: every row's accuracy (every seed) within ``experiment.chance_margin`` of
  chance (1 / number of classes);
- fit to the teacher (per student): on the ID val images, ``MSE = mean (s - t)^2`` and
  ``R^2 = 1 - sum (s - t)^2 / sum (t - mean_i t)^2`` (over items and dimensions);
- background-swap movement: :func:`featcon.analysis.representation.shift_sensitivity`'s
  ``ratio`` between ID test items on grass and the same items, same pixels, same position, on
  another background (:func:`featcon.data.real.make_real_moved`): the mean relative movement
  over the mean relative item-to-item distance on grass.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import time

import jax
import numpy as np

from featcon import io
from featcon import progress as progress_lib
from featcon import models
from featcon.analysis import experiment, representation, suite
from featcon.data import real as real_lib
from featcon.data import refs, registry
from featcon.data.sources import ArraySource
from featcon.distill import finetune, runs, student
from featcon.probe import features, metrics, orchestrator, stages

log = logging.getLogger("featcon")
ROWS = ("imagenet", "random", "supervised")
ABLATIONS = ("large_distill", "other_student", "second_teacher")
ABLATION_ROWS = ("large_distill", "other_student", "second_teacher", "second_student")
ROW_ORDER = ("teacher", "imagenet", "student", "supervised", "random", "large_distill",
             "other_student", "second_teacher", "second_student")
GROUPS = ("covered", "held_out")
SWAP_BACKGROUNDS = ("textures", "photos")
# Job config fields that do not change a job's results (what the summary shows, which other
# jobs exist): a job stays reusable when they change.
JOB_IGNORE = runs.RESULT_INVARIANT + (
    "probe.primary", "experiment.seeds", "experiment.rows", "experiment.line_steps",
    "experiment.ablations", "experiment.ablation_seeds", "experiment.fair_gap",
    "experiment.chance_margin", "experiment.analyses", "experiment.analysis_items",
    "experiment.large_factor", "experiment.large_train", "experiment.other_student",
    "experiment.other_student_overrides", "experiment.second_teacher",
    "experiment.second_teacher_steps")


def _csv(s) -> list[str]:
  return [t.strip() for t in str(s).split(",") if t.strip()]


def _ints(field: str, value) -> list[int]:
  try:
    out = [int(t) for t in _csv(value)]
  except ValueError:
    out = None
  if out is None or any(v < 0 for v in out):
    raise ValueError(f"config.experiment.{field}={value!r} is not allowed; allowed: "
                     "comma-separated non-negative integers")
  return out


def check_config(config) -> dict:
  """Every ``config.experiment`` field checked before any work; returns the parsed values.
  Raises ValueError naming the field, the value and what is allowed."""
  e = config.experiment
  seeds = _ints("seeds", e.seeds)
  if not seeds:
    raise ValueError(f"config.experiment.seeds={e.seeds!r} is not allowed; allowed: at least "
                     "one seed")
  rows, abl = _csv(e.rows), _csv(e.ablations)
  for field, got, allowed in (("rows", rows, ROWS), ("ablations", abl, ABLATIONS),
                              ("swap_backgrounds", _csv(e.swap_backgrounds), SWAP_BACKGROUNDS)):
    bad = [r for r in got if r not in allowed]
    if bad:
      raise ValueError(f"config.experiment.{field} entries {bad} are not allowed; allowed: "
                       f"{', '.join(allowed)}")
  line = _ints("line_steps", e.line_steps)
  if any(n == 0 for n in line):
    raise ValueError(f"config.experiment.line_steps={e.line_steps!r} is not allowed; allowed: "
                     "positive step counts")
  for f in ("fair_gap", "chance_margin"):
    if not 0 < float(e[f]) < 1:
      raise ValueError(f"config.experiment.{f}={e[f]!r} is not allowed; allowed: 0 < value < 1")
  if int(e.large_factor) < 1 or int(e.swap_items) < 2 or int(e.analysis_items) < 2 or int(
      e.second_teacher_steps) < 1:
    raise ValueError(f"config.experiment.large_factor={e.large_factor!r} (allowed >= 1), "
                     f"swap_items={e.swap_items!r}, analysis_items={e.analysis_items!r} (allowed "
                     f">= 2), second_teacher_steps={e.second_teacher_steps!r} (allowed >= 1)")
  if config.teacher.source != "finetune":
    raise ValueError(f"config.teacher.source={config.teacher.source!r} is not allowed for the "
                     "Table 1 experiment; allowed: finetune")
  if config.probe.primary not in stages.PROBE_KINDS:
    raise ValueError(f"config.probe.primary={config.probe.primary!r} is not allowed; allowed: "
                     f"{', '.join(stages.PROBE_KINDS)}")
  if e.analyses:
    bad = [a for a in _csv(e.analyses) if a not in suite.ANALYSES]
    if bad:
      raise ValueError(f"config.experiment.analyses entries {bad} are not allowed; allowed: "
                       f"{', '.join(suite.ANALYSES)}")
  for f in ("other_student", "second_teacher"):
    if e[f] not in models.encoder_names():
      raise ValueError(f"config.experiment.{f}={e[f]!r} is not allowed; allowed: "
                       f"{', '.join(models.encoder_names())}")
  if "second_teacher" in abl and e.second_teacher not in models.EFFICIENTNET_NAMES:
    raise ValueError(f"config.experiment.second_teacher={e.second_teacher!r} is not allowed; "
                     f"allowed: {', '.join(models.EFFICIENTNET_NAMES)} (released weights)")
  refs.parse_ref(e.large_train, "config.experiment.large_train")
  runs.validate_config(config, "evaluate")
  return {"seeds": seeds, "rows": rows, "ablations": abl, "line_steps": line,
          "ablation_seeds": _ints("ablation_seeds", e.ablation_seeds)}


def shift_groups(config) -> dict[str, str]:
  """``{"name:split": "id" | "covered" | "held_out"}`` of the eval sets: a background shift is
  covered when the teacher's fine-tuning data hold that background kind (``teacher.data`` on
  ``all`` or on that kind), a corruption when it is one of ``teacher.finetune.corruptions``."""
  t_bgs = set()
  for r in _csv(config.teacher.data):
    spec = registry.get_spec(refs.parse_ref(r, "config.teacher.data")[0])
    bg = spec.real_background
    t_bgs |= {"grass", "textures", "photos"} if bg == "all" else {bg}
  covered_c = set(_csv(config.teacher.finetune.corruptions))
  out = {}
  for name, split, role in refs.eval_refs(config):
    spec = registry.get_spec(name)
    if role == "id":
      g = "id"
    elif spec.kind == "real_c":
      g = "covered" if spec.corruption in covered_c else "held_out"
    else:
      g = "covered" if spec.real_background in t_bgs else "held_out"
    out[f"{name}:{split}"] = g
  return out


# ----------------------------------------------------------------------------- jobs


def _base(config, root: str):
  c = copy.deepcopy(config)
  with c.unlocked():
    c.teacher.finetune.dir = os.path.abspath(os.path.join(root, "teacher"))
    c.distill.targets_dir = os.path.abspath(os.path.join(root, "targets"))
  return c


def _with(c, seed: int, models: str, baseline: str = "none", **fields):
  c = copy.deepcopy(c)
  with c.unlocked():
    c.seed = seed
    c.probe.models = models
    c.eval.baseline = baseline
    for k, v in fields.items():
      section, _, key = k.rpartition(".")
      node = c
      for part in section.split(".") if section else ():
        node = node[part]
      node[key] = v
  return c


def _supervised(c, seed: int, steps: int):
  d = c.distill
  return _with(c, seed, "teacher", **{
      "teacher.source": "pretrain", "teacher.data": c.data.distill_train,
      "teacher.data_limit": c.data.distill_limit,
      "teacher.pretrain.steps": steps, "teacher.pretrain.batch_size": d.batch_size,
      "teacher.pretrain.lr": d.lr, "teacher.pretrain.weight_decay": d.weight_decay,
      "teacher.pretrain.warmup_steps": max(1, steps // 10)})


def _distill_size(config) -> int:
  """How many images the distillation reads (its limit, or the whole set when that is 0)."""
  if config.data.distill_limit > 0:
    return int(config.data.distill_limit)
  ds = refs.open_dataset(config, config.data.distill_train, "config.data.distill_train")
  return len(ds.source)


def jobs(config, root: str) -> list[orchestrator.Job]:
  """The run directories of the module docstring, in the order they run: the teacher (its
  fine-tuning first), every seed's student, the other rows, the line, the ablations."""
  p = check_config(config)
  c = _base(config, root)
  e = config.experiment
  out = []

  def job(key, wd, cfg, distils, ignore=()):
    return orchestrator.Job(key, os.path.join(root, wd), cfg, _runner(distils),
                            JOB_IGNORE + ignore)

  # The released or fine-tuned teacher's rows do not depend on the distillation's settings.
  frozen = ("distill", "data.distill_train", "data.distill_limit", "teacher.data_limit")
  out.append(job("teacher", "rows/teacher", _with(c, p["seeds"][0], "teacher", "pixels"),
                 False, frozen))
  for s in p["seeds"]:
    out.append(job(f"student/s{s}", f"s{s}/main", _with(c, s, "student"), True))
  if "imagenet" in p["rows"]:
    out.append(job("imagenet", "rows/imagenet",
                   _with(c, p["seeds"][0], "teacher", **{"teacher.source": "checkpoint"}),
                   False, frozen + ("teacher.finetune", "teacher.pretrain", "teacher.data")))
  sup = [job(f"supervised/s{s}", f"s{s}/supervised", _supervised(c, s, c.distill.steps), False)
         for s in p["seeds"]] if "supervised" in p["rows"] else []
  out += sup[:1]
  for n in p["line_steps"]:  # the line before the other seeds' supervised rows
    if n != c.distill.steps or "supervised" not in p["rows"]:
      out.append(job(f"line/supervised_n{n}", f"line/supervised_n{n}",
                     _supervised(c, p["seeds"][0], n), False))
  if "random" in p["rows"]:  # one random init (the first seed): a reference row, no spread
    s = p["seeds"][0]
    out.append(job(f"random/s{s}", f"s{s}/random",
                   _with(c, s, "teacher", **{"teacher.source": "random"}), False))
  out += sup[1:]
  for s in p["ablation_seeds"] if p["ablations"] else ():
    if "large_distill" in p["ablations"]:
      n = _distill_size(config) * int(e.large_factor)
      out.append(job(f"large_distill/s{s}", f"ablations/large_distill_s{s}",
                     _with(c, s, "student", **{"data.distill_train": e.large_train,
                                               "data.distill_limit": n}), True))
    if "other_student" in p["ablations"]:
      out.append(job(f"other_student/s{s}", f"ablations/other_student_s{s}",
                     _with(c, s, "student", **{"model.student": e.other_student,
                                               "model.student_overrides":
                                                   dict(e.other_student_overrides)}), True))
    if "second_teacher" in p["ablations"]:
      arch = e.second_teacher
      tdir = os.path.abspath(os.path.join(root, f"teacher_{arch}"))
      t_steps = int(e.second_teacher_steps)
      kw = {"model.teacher": arch, "model.student": arch, "teacher.finetune.dir": tdir,
            "teacher.pretrain.steps": t_steps,
            "teacher.pretrain.warmup_steps": max(1, t_steps // 20),
            "teacher.finetune.eval_every": max(1, t_steps // 4)}
      if s == p["ablation_seeds"][0]:
        out.append(job("second_teacher", f"rows/teacher_{arch}",
                       _with(c, s, "teacher", **kw), False, frozen))
      out.append(job(f"second_student/s{s}", f"ablations/second_student_s{s}",
                     _with(c, s, "student", **kw), True))
  return out


def _runner(distils: bool):
  def run(c, wd):
    runs.write_run_info(wd, c, "real_experiment")
    if distils:
      student.distill(c, wd)
    stages.train_probes(c, wd)
    res = stages.evaluate(c, wd)
    model = "student" if distils else "teacher"
    if distils:
      res["fit_to_teacher"] = fit_to_teacher(c, wd)
    res["swap"] = swap_movement(c, wd, model)
    res["probed"] = model
    if c.teacher.source == "finetune" and not distils:
      res["heldout_curve"] = finetune.heldout_curve(c, wd)
    return res
  return run


def fit_to_teacher(config, workdir: str) -> dict:
  """MSE and R^2 (module docstring) of the student's embedding to the teacher's on the ID val
  images (``config.data.probe_val``)."""
  ds = refs.open_dataset(config, config.data.probe_val, "config.data.probe_val")
  out = {}
  for model in ("teacher", "student"):
    module, variables = runs.model_variables(config, workdir, model)
    out[model] = features.cached_features(module, variables, ds, config,
                                          os.path.join(workdir, "features", model))[0]
  return dict(fit_stats(out["teacher"], out["student"]), set=config.data.probe_val)


def fit_stats(t, s) -> dict:
  """``MSE = mean (s - t)^2``, the MSE of predicting every item by the teacher's mean, and
  ``R^2 = 1 - sum (s - t)^2 / sum (t - mean_i t)^2`` (over items and dimensions) of student
  embeddings ``s`` to teacher embeddings ``t`` (both (n, d))."""
  t, s = np.asarray(t, np.float64), np.asarray(s, np.float64)
  if t.shape != s.shape or t.ndim != 2:
    raise ValueError(f"teacher {t.shape} and student {s.shape} embeddings must be equal (n, d)")
  sse = float(np.square(s - t).sum())
  sst = float(np.square(t - t.mean(0)).sum())
  return {"mse": sse / t.size, "mse_of_teacher_mean": sst / t.size, "r2": 1.0 - sse / sst,
          "n": int(t.shape[0])}


def _objects(config) -> str:
  spec = registry.get_spec(refs.parse_ref(config.data.probe_train, "config.data.probe_train")[0])
  return spec.real_objects


def swap_movement(config, workdir: str, model: str) -> dict:
  """Background-swap movement (module docstring) of ``model``'s embedding for each
  ``experiment.swap_backgrounds`` kind, on the first ``experiment.swap_items`` ID test items."""
  e = config.experiment
  objects, size = _objects(config), config.data.image_size
  module, variables = runs.model_variables(config, workdir, model)
  base = real_lib.make_real(objects, "grass", "test", image_size=size)
  n = min(int(e.swap_items), len(base))
  idx = np.sort(np.random.default_rng(0).permutation(len(base))[:n])

  def emb(src):
    ds = registry.Dataset("swap", "test", ArraySource(src.images[idx], src.labels[idx]), 10, None)
    return features.extract_features(module, variables, ds, config)[0]

  e0 = emb(base)
  out = {}
  for k, bg in enumerate(_csv(e.swap_backgrounds)):
    moved = real_lib.make_real_moved(objects, bg, "test", positions_from="grass",
                                     image_size=size)
    out[bg] = representation.shift_sensitivity(e0, emb(moved), jax.random.PRNGKey(k))
  return out


# ----------------------------------------------------------------------------- summary


def _row_label(key: str) -> tuple[str, str]:
  """Job key -> (row label, seed tag)."""
  name, _, seed = key.partition("/")
  return name, seed or "-"


def _point(res: dict, probe: str) -> dict:
  model = res.get("probed", "teacher")
  return next(r for r in res["rows"] if r["model"] == model and r["probe"] == probe)


def _group_mean(per_set: dict, groups: dict, g: str) -> float:
  vals = [v for k, v in per_set.items() if groups.get(k) == g]
  return float(np.mean(vals)) if vals else float("nan")


def summarize(config, results: dict, probe: str | None = None) -> dict:
  """Every number of the tables from the finished jobs' results (``{job key: results}``), for
  ``probe`` (default ``config.probe.primary``)."""
  probe = probe or config.probe.primary
  e = config.experiment
  groups = shift_groups(config)
  chance = 1.0 / 10
  rows: dict[str, dict] = {}
  for key, res in results.items():
    label, seed = _row_label(key)
    if label == "line":
      continue
    pt = _point(res, probe)
    r = rows.setdefault(label, {"seeds": [], "id": [], "ood": [], "covered": [], "held_out": [],
                                "per_set": {}, "swap": {}, "fit_to_teacher": []})
    r["seeds"].append(seed)
    r["id"].append(pt["id"])
    r["ood"].append(pt["ood"])
    for g in GROUPS:
      r[g].append(_group_mean(pt["per_set"], groups, g))
    for k, v in pt["per_set"].items():
      r["per_set"].setdefault(k, []).append(v)
    for bg, m in res.get("swap", {}).items():
      r["swap"].setdefault(bg, []).append(m["ratio"])
    if "fit_to_teacher" in res:
      r["fit_to_teacher"].append(res["fit_to_teacher"])
  # The standard-model line: pixel ridge points of the teacher's job, supervised (seed 0) at
  # every step count.
  base = []
  if "teacher" in results:
    for b in results["teacher"].get("baseline", []):
      base.append(dict(b, group="baseline", kind="pixel ridge"))
  sup_keys = [k for k in results if k.startswith("line/")]
  first = f"supervised/s{_csv(e.seeds)[0]}"
  if first in results:
    sup_keys.append(first)
  for k in sup_keys:
    pt = _point(results[k], probe)
    steps = results[k]["config"]["teacher"]["pretrain"]["steps"]
    base.append({"label": f"supervised Lite0, {steps} steps", "group": "baseline",
                 "kind": "supervised", "id": pt["id"], "ood": pt["ood"],
                 "per_set": pt["per_set"]})
  for b in base:
    for g in GROUPS:
      b[g] = _group_mean(b["per_set"], groups, g)
  fits = {}
  if len(base) >= 2:
    for what in ("ood",) + GROUPS:
      ys = [b[what] for b in base]
      if all(np.isfinite(ys)):
        fits[what] = [float(v) for v in metrics.fit_baseline([b["id"] for b in base], ys)]
  for r in rows.values():
    for what, fit in fits.items():
      name = "effective_robustness" if what == "ood" else f"effective_robustness_{what}"
      r[name] = [float(metrics.effective_robustness(i, o, fit))
                 for i, o in zip(r["id"], r[what])]
  for b in base:
    if "ood" in fits:
      b["effective_robustness"] = float(metrics.effective_robustness(b["id"], b["ood"],
                                                                     fits["ood"]))
  # Uninformative sets: every row (every seed) within chance_margin of chance.
  margin = float(e.chance_margin)
  uninformative = sorted(k for k in groups if groups[k] != "id" and all(
      abs(v - chance) <= margin for r in rows.values() for v in r["per_set"].get(k, [])))
  fair = fair_test(rows, float(e.fair_gap))
  out = {"probe": probe, "rows": {k: rows[k] for k in ROW_ORDER if k in rows},
         "groups": groups, "baseline": base, "fits": fits,
         "line_equation": (f"logit(OOD) = {fits['ood'][0]:.3f} logit(ID) "
                           f"{fits['ood'][1]:+.3f}") if "ood" in fits else None,
         "uninformative_sets": uninformative, "chance": chance, "fair_test": fair}
  if "teacher" in results:
    out["teacher_heldout_curve"] = results["teacher"].get("heldout_curve", [])
  return out


def fair_test(rows: dict, gap: float) -> dict:
  """Every seed's student within ``gap`` of the teacher's ID accuracy (module docstring)."""
  if "teacher" not in rows or "student" not in rows:
    return {"fair": False, "reason": "no teacher or no student row", "gap_allowed": gap}
  t = rows["teacher"]["id"][0]
  diffs = {s: float(v - t) for s, v in zip(rows["student"]["seeds"], rows["student"]["id"])}
  bad = {s: d for s, d in diffs.items() if abs(d) > gap + 1e-9}  # accuracies: k / n exactly
  reason = ("every seed's student is within {:.2f} of the teacher's ID accuracy".format(gap)
            if not bad else "; ".join(
                f"student {s} ID {t + d:.3f} vs teacher {t:.3f} (gap {d:+.3f} > {gap:.2f})"
                for s, d in bad.items()))
  return {"fair": not bad, "teacher_id": t, "student_minus_teacher": diffs,
          "gap_allowed": gap, "reason": reason}


def caption(summary: dict) -> str:
  """The caption of summary.md: the ID set and the OOD sets in their groups, the probe, the
  seeds, and the effective-robustness formula (module docstring); the probe's training sets
  come from ``summary["config"]`` when the summary holds it."""
  groups = summary["groups"]
  named = lambda g: ", ".join(k for k, v in groups.items() if v == g) or "none"
  n_ood = sum(1 for v in groups.values() if v != "id")
  seeds = sorted({len(r["id"]) for r in summary["rows"].values()})
  probe = summary["probe"]
  how = {"adamw": "AdamW, the epoch of best ID validation accuracy",
         "ridge": "closed-form ridge, the lambda of best ID validation accuracy"}.get(probe, probe)
  cfg = summary.get("config") or {}
  data = cfg.get("data", {})
  where = (f", trained on {data['probe_train']} and selected on {data['probe_val']}"
           if data.get("probe_train") else "")
  rep = cfg.get("probe", {}).get("representation", "embedding")
  seed_text = (f"experiment seeds {cfg['experiment']['seeds']}; " if cfg.get("experiment")
               else "")
  return "\n".join([
      f"ID: {named('id')}. OOD (all shifts): the mean over {n_ood} sets; covered (its background "
      f"kind or corruption is in the teacher's fine-tuning data): {named('covered')}; held out: {named('held_out')}.",
      f"Probe: {probe} ({how}), a linear classifier on the frozen `{rep}` features{where}. "
      f"Accuracies are fractions. Seeds: the `seeds` column ({seed_text}"
      f"{' or '.join(map(str, seeds))} per row); mean ± std over seeds (population std).",
      "Eff. robustness (ER): ER = OOD - sigmoid(a logit(ID) + b), with logit(p) = "
      "ln(p / (1 - p)) and (a, b) the least-squares fit of logit(OOD) = a logit(ID) + b over "
      "the standard models listed below (Taori et al. 2020); one fit per OOD average (all "
      "shifts, covered, held out)."])


def markdown(summary: dict) -> str:
  """The tables of summary.md: rows (ID, OOD, covered, held out, effective robustness), fair
  test, the line, fit to the teacher, background-swap movement, per-shift accuracies."""
  ms = orchestrator.mean_std
  rows, groups = summary["rows"], summary["groups"]
  lines = [caption(summary), ""]
  if summary.get("line_equation"):
    lines += [f"Standard-model line ({len(summary['baseline'])} models): "
              f"{summary['line_equation']}", ""]
  lines += ["| model | seeds | ID acc | OOD acc (all shifts) | covered | held out | "
            "eff. robustness | ER covered | ER held out |", "|---|---|---|---|---|---|---|---|---|"]
  for label, r in rows.items():
    er = [ms(r[k]) if k in r else "" for k in ("effective_robustness",
                                                "effective_robustness_covered",
                                                "effective_robustness_held_out")]
    lines.append(f"| {label} | {len(r['id'])} | {ms(r['id'])} | {ms(r['ood'])} | "
                 f"{ms(r['covered'])} | {ms(r['held_out'])} | {' | '.join(er)} |")
  f = summary["fair_test"]
  lines += ["", f"Fair test (student ID within {f['gap_allowed']:.2f} of the teacher's): "
            f"{'FAIR' if f['fair'] else 'NOT FAIR'}: {f['reason']}.", ""]
  lines += ["| standard model | ID | OOD | covered | held out |", "|---|---|---|---|---|"]
  for b in summary["baseline"]:
    lines.append(f"| {b['label']} | {b['id']:.3f} | {b['ood']:.3f} | {b['covered']:.3f} | "
                 f"{b['held_out']:.3f} |")
  fits = [(k, r["fit_to_teacher"]) for k, r in rows.items() if r["fit_to_teacher"]]
  if fits:
    lines += ["", "| student | seeds | held-out MSE to teacher | MSE of the teacher's mean | "
              "R² |", "|---|---|---|---|---|"]
    for k, fs in fits:
      lines.append(f"| {k} | {len(fs)} | {ms([x['mse'] for x in fs])} | "
                   f"{ms([x['mse_of_teacher_mean'] for x in fs])} | {ms([x['r2'] for x in fs])} |")
  bgs = sorted({bg for r in rows.values() for bg in r["swap"]})
  if bgs:
    lines += ["", "Background-swap movement (embedding movement / item-to-item distance):", "",
              "| model | " + " | ".join(bgs) + " |", "|---|" + "---|" * len(bgs)]
    for k, r in rows.items():
      lines.append(f"| {k} | " + " | ".join(ms(r["swap"][bg]) if bg in r["swap"] else ""
                                            for bg in bgs) + " |")
  lines += ["", "| eval set | group | " + " | ".join(rows) + " |",
            "|---|---|" + "---|" * len(rows)]
  for s, g in groups.items():
    flag = " (uninformative)" if s in summary["uninformative_sets"] else ""
    lines.append(f"| {s}{flag} | {g} | " + " | ".join(
        ms(r["per_set"][s]) if s in r["per_set"] else "" for r in rows.values()) + " |")
  for kind, o in summary.get("other_probes", {}).items():
    lines += ["", f"The same rows with the {kind} probe (line: {o['line_equation']}; fair test: "
              f"{'FAIR' if o['fair_test']['fair'] else 'NOT FAIR'}: {o['fair_test']['reason']}):",
              "", "| model | seeds | ID acc | OOD acc | covered | held out | eff. robustness |",
              "|---|---|---|---|---|---|---|"]
    for label, r in o["rows"].items():
      er = ms(r["effective_robustness"]) if "effective_robustness" in r else ""
      lines.append(f"| {label} | {len(r['id'])} | {ms(r['id'])} | {ms(r['ood'])} | "
                   f"{ms(r['covered'])} | {ms(r['held_out'])} | {er} |")
  return "\n".join(lines)


def figures(summary: dict, root: str) -> list[str]:
  """Figure 1 (``scatter.png``: every row's points, the standard models, the fitted line with
  its equation) and the teacher's held-out curve (``teacher_heldout.png``)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  out = []
  pts = [{"id": i, "ood": o, "group": label, "label": f"{label} {s}"}
         for label, r in summary["rows"].items()
         for s, i, o in zip(r["seeds"], r["id"], r["ood"])]
  fit = summary["fits"].get("ood")
  seeds = max((len(r["seeds"]) for r in summary["rows"].values()), default=0)
  title = (f"Table 1 rows on Fashion-MNIST: one point per seed ({seeds} seeds per row at most); "
           "ID = the ID set (items on grass), OOD = the mean over every shift")
  path = os.path.join(root, "scatter.png")
  metrics.scatter_plot(pts + summary["baseline"], fit, path, title=title,
                       fit_label=summary.get("line_equation"))
  out.append(path)
  curve = summary.get("teacher_heldout_curve") or []
  if curve:
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    ax.plot([c["step"] for c in curve], [c["heldout_accuracy"] for c in curve], "o-",
            label="teacher head, held-out set")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("held-out accuracy (fraction)")
    ax.set_title("Teacher fine-tuning: accuracy of its head on the held-out set", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    path = os.path.join(root, "teacher_heldout.png")
    io.save_figure(fig, path)
    out.append(path)
  return out


def analyses(config, root: str, results: dict, analyze_config,
             start: bool = True) -> dict | None:
  """The analyses of ``experiments.analyze`` (``analyze_config``: configs/analyze.py:real, with
  ``experiment.analyses``) on the fine-tuned teacher, the released network and every seed's
  student, into ``root/analyses``; reused when its ``summary.json`` was made from the same
  encoders and settings; with ``start=False`` only reused, never started (None otherwise)."""
  e = config.experiment
  if not e.analyses:
    return None
  arch = config.model.teacher
  specs = [("teacher", f"{arch}@{os.path.join(root, 'rows', 'teacher', 'teacher')}")]
  if "imagenet" in results:
    specs.append(("imagenet", f"{arch}@pretrained"))
  specs += [(f"student_{k.split('/')[1]}", f"{config.model.student}@"
             f"{os.path.join(root, k.split('/')[1], 'main', 'student')}")
            for k in results if k.startswith("student/")]
  acfg = copy.deepcopy(analyze_config)
  with acfg.unlocked():
    acfg.encoders = ",".join(f"{l}={s}" for l, s in specs)
    acfg.encoder_overrides = dict(config.model.overrides)
    acfg.analyses = e.analyses
    acfg.data.source = f"real:{config.data.probe_train.split(':')[0]}:test"
    acfg.data.size = config.data.image_size
    acfg.data.n_per_domain = int(e.analysis_items)
    acfg.data.n_shift = min(100, int(e.analysis_items))
    acfg.cam_mass_examples = min(100, int(e.analysis_items))
    if config.data.image_size < 48:
      acfg.cam_layer = ""
  wd = os.path.join(root, "analyses")
  fp = io.fingerprint(acfg)
  done = os.path.join(wd, "summary.json")
  if os.path.exists(done):
    try:
      prev = io.read_json(done)
      if prev.get("fingerprint") == fp:
        return prev
    except io.CorruptFileError:
      pass
  if not start:
    return None
  res = experiment.run(acfg, wd)
  out = {"fingerprint": fp, "encoders": specs, "headline": experiment.headline_numbers(
      res["encoders"]), "table_md": experiment.markdown_table(res["encoders"])}
  io.write_json(done, out, indent=1)
  return out


def run(config, root: str, deadline: float | None = None, analyze_config=None) -> dict:
  """Every job (resuming), the summary after each (``summary.json``, ``summary.md``), then the
  figures and the analyses (settings: ``analyze_config``, configs/analyze.py:real, needed when
  ``experiment.analyses`` names any); returns the summary. With ``deadline`` (a ``time.time()``
  value) no job and no analysis starts after it (:func:`featcon.probe.orchestrator.run_jobs`)."""
  if config.experiment.analyses and analyze_config is None:
    raise ValueError(f"config.experiment.analyses={config.experiment.analyses!r} needs the "
                     "analyses' settings; allowed: pass analyze_config (configs/analyze.py:real) "
                     "or set config.experiment.analyses=''")
  t_all = time.time()
  todo = jobs(config, root)
  state = {}

  def write(results, seconds):
    s = summarize(config, results)
    s["other_probes"] = {}
    for kind in stages.PROBE_KINDS:
      if kind != s["probe"]:
        o = summarize(config, results, kind)
        s["other_probes"][kind] = {k: o[k] for k in ("rows", "baseline", "fits",
                                                     "line_equation", "fair_test")}
    s.update({"seconds": seconds, "total_seconds": round(time.time() - t_all, 1),
              "load_average": [round(v, 2) for v in os.getloadavg()],
              "jobs_done": sorted(results), "jobs_planned": [j.key for j in todo],
              "config": json.loads(config.to_json_best_effort()), "versions": io.versions()})
    if state.get("analyses"):
      s["analyses"] = state["analyses"]
    io.write_json(os.path.join(root, "summary.json"), s, indent=1)
    table = markdown(s)
    io.atomic_write(os.path.join(root, "summary.md"), lambda f: f.write(table + "\n"))
    state["summary"], state["table"] = s, table
    log.info("summary so far (%.0f s):\n%s", time.time() - t_all, table)

  # The table's rows, then the analyses of the teacher and its students, then the ablations.
  core = [j for j in todo if _row_label(j.key)[0] not in ABLATION_ROWS]
  results, seconds = orchestrator.run_jobs(core, write, deadline)
  if not results:
    raise RuntimeError(f"{root}: no job finished before the deadline")
  figures(state["summary"], root)
  t0 = time.time()  # past the deadline: a finished analysis is still read, none is started
  state["analyses"] = analyses(config, root, results, analyze_config,
                               start=deadline is None or time.time() < deadline)
  seconds["analyses"] = round(time.time() - t0, 1)
  rest = [j for j in todo if _row_label(j.key)[0] in ABLATION_ROWS]

  def write_all(more, more_seconds):
    write(dict(results, **more), dict(seconds, **more_seconds))
  if rest:
    more, more_seconds = orchestrator.run_jobs(rest, write_all, deadline)
    results.update(more)
    seconds.update(more_seconds)
  write(results, seconds)
  drawn = figures(state["summary"], root)
  progress_lib.stage(f"real_experiment: wrote {root}/summary.json, summary.md, "
                     + ", ".join(os.path.basename(p) for p in drawn)
                     + "; each run in its s<seed>/<row>/ folder")
  return state["summary"]
