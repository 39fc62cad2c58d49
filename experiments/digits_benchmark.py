r"""The offline benchmark over architectures and seeds: distil -> probe -> evaluate for each
(model, seed) of configs/distill/digits.py, then one summary table.

  python -m experiments.digits_benchmark --workdir=runs/digits_benchmark --seeds=0,1,2 \
      --models=tiny-rn,mlp-relu,mlp-identity,tiny-vit

Each run lives in --workdir/<model>_s<seed> and resumes like the single entry points. The
theory students (mlp-relu, mlp-identity) reuse the tiny-rn teacher of the same seed (its
checkpoints are copied, not retrained). Writes summary.json and summary.md after every run.
About 2-3 minutes per (architecture, seed) on a 2-core CPU.
"""
import json
import os
import shutil
import time

import numpy as np
from absl import app, flags, logging

from configs.distill import digits
from featcon import distill, distributed, io
from featcon import training as train_lib
from featcon.probe import stages as probe_run

_WORKDIR = flags.DEFINE_string("workdir", "runs/digits_benchmark", "Output directory.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_MODELS = flags.DEFINE_list("models", ["tiny-rn", "mlp-relu", "mlp-identity", "tiny-vit"],
                            "Arguments of configs/distill/digits.py.")
_PROBE = flags.DEFINE_enum("probe", "adamw", ["adamw", "ridge"], "Probe in the summary.")
distributed.add_flags(cpu_devices=1)  # deep stages: docs/scaling.md


def _one(model: str, seed: int, root: str) -> dict:
  config = digits.get_config(model)
  config.seed = seed
  wd = os.path.join(root, f"{model}_s{seed}")
  teacher_src = os.path.join(root, f"{config.model.teacher}_s{seed}", "teacher")
  if model != config.model.teacher and os.path.isdir(teacher_src) and not os.path.isdir(
      os.path.join(wd, "teacher")):
    shutil.copytree(teacher_src, os.path.join(wd, "teacher"))
  t0 = time.time()
  distill.write_run_info(wd, config, "benchmark")
  distill.distill(config, wd)
  probe_run.train_probes(config, wd)
  res = probe_run.evaluate(config, wd)
  res["seconds"] = time.time() - t0
  return res


def summarize(runs: dict, probe: str) -> tuple[str, dict]:
  """Mean and standard deviation over seeds of ID/OOD accuracy and effective robustness."""
  rows, table = {}, ["| student arch | encoder | seeds | ID acc | OOD acc | OOD drop (ID-OOD) | "
                     "eff. robustness |", "|---|---|---|---|---|---|---|"]
  for model, per_seed in runs.items():
    for who in ("teacher", "student"):
      pts = [next(r for r in res["rows"] if r["model"] == who and r["probe"] == probe)
             for res in per_seed.values()]
      vals = {k: np.array([p.get(k, np.nan) for p in pts], float)
              for k in ("id", "ood", "effective_robustness")}
      rows[f"{model}/{who}"] = {k: [float(x) for x in v] for k, v in vals.items()}
      ms = lambda v: f"{v.mean():.3f} ± {v.std():.3f}"
      table.append(f"| {model} | {who} | {len(pts)} | {ms(vals['id'])} | {ms(vals['ood'])} | "
                   f"{ms(vals['id'] - vals['ood'])} | {ms(vals['effective_robustness'])} |")
  return "\n".join(table), rows


def main(argv):
  del argv
  distributed.initialize()
  logging.set_verbosity(logging.INFO)
  train_lib.quiet_orbax_logs()
  train_lib.enable_compilation_cache()
  root = _WORKDIR.value
  os.makedirs(root, exist_ok=True)
  runs, seconds = {}, {}
  for seed in [int(s) for s in _SEEDS.value]:
    for model in _MODELS.value:
      res = _one(model, seed, root)
      runs.setdefault(model, {})[seed] = res
      seconds[f"{model}_s{seed}"] = round(res["seconds"], 1)
      table, rows = summarize(runs, _PROBE.value)
      with open(os.path.join(root, "summary.json"), "w") as f:
        json.dump({"probe": _PROBE.value, "rows": rows, "seconds": seconds,
                   "versions": io.versions()}, f, indent=1)
      with open(os.path.join(root, "summary.md"), "w") as f:
        f.write(table + "\n")
      logging.info("summary so far:\n%s", table)
  print(table)


if __name__ == "__main__":
  app.run(main)
