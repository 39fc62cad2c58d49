r"""Representation distillation from a real pre-trained teacher under real shifts, over seeds:
for each seed, distil -> probe -> evaluate (configs/distill/real_experiment.py), the extra probe
rows (random-init network, supervised from scratch) and the ablations; then tables over seeds.

  python -m experiments.real_experiment --config=configs/distill/real_experiment.py \
      --workdir=runs/real_experiment

Layout: --workdir/s<seed>/{main,random,supervised,large_distill,other_student}, each a run
directory of the single-stage entry points (resumable; finished stages are not redone). The
frozen teacher's features are extracted once (seed 0) and copied to the other seeds. Writes
summary.json, summary.md (overall and per-shift tables, mean +- std over seeds) and scatter.png
(Figure 1: every seed's probe of each model against the pixel baselines of seed 0).
"""
import copy
import json
import os
import shutil
import time

import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from featcon import cli
from featcon import distill, io
from featcon.probe import metrics
from featcon.probe import stages

_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("configs/distill/real_experiment.py"),
                                          "Experiment config.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (resumed if it exists).",
                               required=True)

ROWS = ("teacher", "student", "random", "supervised", "large_distill", "other_student")


def _variant(config, name: str):
  """The config of one run directory of a seed (see the module docstring)."""
  c = copy.deepcopy(config)
  e = config.experiment
  with c.unlocked():
    if name == "main":
      c.probe.models = "teacher,student"
    elif name == "random":
      c.teacher.source, c.probe.models, c.eval.baseline = "random", "teacher", "none"
    elif name == "supervised":
      c.teacher.source, c.probe.models, c.eval.baseline = "pretrain", "teacher", "none"
    elif name == "large_distill":
      c.data.distill_limit = config.data.distill_limit * e.large_factor
      c.probe.models, c.eval.baseline = "student", "none"
    elif name == "other_student":
      c.model.student = e.other_student
      c.model.student_overrides = dict(e.other_student_overrides)
      c.probe.models, c.eval.baseline = "student", "none"
    else:
      raise ValueError(f"run variant={name!r} is not allowed; allowed: main, random, "
                       "supervised, large_distill, other_student")
  return c


def _run(config, wd: str, name: str) -> dict:
  """One run directory: distil (if the variant has a student), probes, evaluation; a directory
  whose ``results.json`` was written under this very config is reused as it is."""
  done = os.path.join(wd, "results.json")
  if os.path.exists(done):
    try:
      prev = io.read_json(done)
    except io.CorruptFileError:
      prev = None
    if prev and prev.get("config") == json.loads(config.to_json_best_effort()):
      logging.info("%s: finished earlier under this config; reusing %s", name, done)
      return prev
  distill.write_run_info(wd, config, "real_experiment")  # the variant's config
  if name in ("main", "large_distill", "other_student"):
    distill.distill(config, wd)
  stages.train_probes(config, wd)
  return stages.evaluate(config, wd)


def _csv(s: str) -> list[str]:
  return [t.strip() for t in s.split(",") if t.strip()]


def _rows(name: str, res: dict, probe: str) -> dict:
  """Row label -> result row of a variant's results (label per the ROWS names)."""
  out = {}
  for r in res["rows"]:
    if r["probe"] != probe:
      continue
    label = {"main": r["model"], "random": "random", "supervised": "supervised"}.get(name, name)
    out[label] = r
  return out


def summarize(per_seed: dict, fit, probe: str) -> tuple[dict, str]:
  """Mean and std over seeds of ID, OOD, effective robustness (against ``fit``) and every
  per-set accuracy, per row."""
  summary = {}
  for label in ROWS:
    pts = [rows[label] for rows in per_seed.values() if label in rows]
    if not pts:
      continue
    ids = np.array([p["id"] for p in pts])
    oods = np.array([p["ood"] for p in pts])
    ent = {"seeds": len(pts), "id": ids.tolist(), "ood": oods.tolist(),
           "per_set": {k: [p["per_set"][k] for p in pts] for k in pts[0]["per_set"]}}
    if fit is not None:
      ent["effective_robustness"] = [float(metrics.effective_robustness(i, o, fit))
                                     for i, o in zip(ids, oods)]
    summary[label] = ent
  ms = lambda v: f"{np.mean(v):.3f} ± {np.std(v):.3f}"
  lines = [f"Probe: {probe}. Mean ± std over seeds.", "",
           "| model | seeds | ID acc | OOD acc (mean of shifts) | ID − OOD | eff. robustness |",
           "|---|---|---|---|---|---|"]
  for label, e in summary.items():
    er = ms(e["effective_robustness"]) if "effective_robustness" in e else ""
    lines.append(f"| {label} | {e['seeds']} | {ms(e['id'])} | {ms(e['ood'])} | "
                 f"{ms(np.array(e['id']) - np.array(e['ood']))} | {er} |")
  sets = list(next(iter(summary.values()))["per_set"])
  lines += ["", "| eval set | " + " | ".join(summary) + " |",
            "|---|" + "---|" * len(summary)]
  for s in sets:
    lines.append(f"| {s} | " + " | ".join(ms(e["per_set"][s]) if s in e["per_set"] else ""
                                          for e in summary.values()) + " |")
  return summary, "\n".join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  config = _CONFIG.value
  root = _WORKDIR.value
  distill.start_stage(config, root, "real_experiment")
  e = config.experiment
  seeds = [int(s) for s in _csv(e.seeds)]
  variants = ["main"] + _csv(e.extra_rows)
  ablations, ablation_seeds = _csv(e.ablations), [int(s) for s in _csv(e.ablation_seeds)]
  probe = config.probe.primary
  per_seed, seconds, results = {}, {}, {}
  t_all = time.time()
  # Every seed's main run first (the teacher-vs-student result), then the extra rows, then the
  # ablations.
  jobs = [(s, n) for n in variants for s in seeds] + [
      (s, n) for n in ablations for s in ablation_seeds]
  for seed, name in jobs:
    c = _variant(config, name)
    with c.unlocked():
      c.seed = seed
      if seed != seeds[0]:
        c.eval.baseline = "none"  # the pixel baselines and their fit are seed 0's (below)
    wd = os.path.join(root, f"s{seed}", name)
    teacher_feats = os.path.join(root, f"s{seeds[0]}", "main", "features", "teacher")
    if name == "main" and seed != seeds[0] and os.path.isdir(teacher_feats) and \
        not os.path.isdir(os.path.join(wd, "features", "teacher")):
      shutil.copytree(teacher_feats, os.path.join(wd, "features", "teacher"))
    t0 = time.time()
    res = _run(c, wd, name)
    seconds[f"s{seed}/{name}"] = round(time.time() - t0, 1)
    results[(seed, name)] = res
    per_seed.setdefault(seed, {}).update(_rows(name, res, probe))
    fit = results[(seeds[0], "main")]["baseline_fit"]
    summary, table = summarize(per_seed, fit, probe)
    io.write_json(os.path.join(root, "summary.json"), {
        "probe": probe, "rows": summary, "baseline_fit": fit,
        "baseline": results[(seeds[0], "main")]["baseline"], "seconds": seconds,
        "total_seconds": round(time.time() - t_all, 1), "eval_sets": res["eval_sets"],
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "config": json.loads(config.to_json_best_effort()), "versions": io.versions()})
    with open(os.path.join(root, "summary.md"), "w") as f:
      f.write(table + "\n")
    logging.info("summary so far (%.0f s):\n%s", time.time() - t_all, table)
  base = results[(seeds[0], "main")]["baseline"]
  points = [dict(r, label=f"{lab} s{s}", group=lab) for s, rows in per_seed.items()
            for lab, r in rows.items()]
  metrics.scatter_plot(points + base, fit, os.path.join(root, "scatter.png"),
                       title="EfficientNet-Lite0 (ImageNet) -> distilled students, Fashion-MNIST")
  print(table)


def run():
  """Console-script entry point (``featcon-real-experiment``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
