r"""The Table 1 experiment on real weights (featcon/analysis/table1.py) at the size an accelerator
affords, in one call: configs/distill/real_experiment.py:gpu (96 px, the fine-tuned teacher
1,600 steps, students 1,500 steps of batch 64, 2,000 items per eval set), the same summary as
the CPU run (summary.json, summary.md, scatter.png) plus accelerator_real.json (device, wall
time, the fair-test verdict and the headline rows).

  pip install -e ".[cuda]"                                        # JAX's CUDA 12 wheels
  python -m benchmarks.accelerator_real --out=runs/accelerator_real   # one GPU, under 8 minutes
  python -m benchmarks.accelerator_real --out=/tmp/acc_real --reduced # CPU: the :ci size

``--reduced`` runs the ``:ci`` config (32 px, a few steps) so that the script is tested on a
CPU; its numbers only show that the script works. ``--budget_s`` starts no run directory after
that many seconds (what finished is summarised and the missing ones are named; the same --out
resumes). The output folder is resumable like experiments.real_experiment's --workdir.
"""
import json
import os
import platform
import time

from absl import app, flags

flags.DEFINE_string("out", None, "Output folder (the experiment's workdir).", required=True)
flags.DEFINE_bool("reduced", False, "The :ci size on a CPU (a test that the script runs).")
flags.DEFINE_float("budget_s", 480.0, "Start no new run directory after this many seconds.")
FLAGS = flags.FLAGS


def _headline(summary):
  rows = summary["rows"]
  out = {}
  for k, r in rows.items():
    out[k] = {m: sum(r[m]) / len(r[m]) for m in ("id", "ood", "covered", "held_out")}
  return out


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  from configs.distill import real_experiment  # pylint: disable=g-import-not-at-top
  from configs import analyze  # pylint: disable=g-import-not-at-top
  from featcon import distill  # pylint: disable=g-import-not-at-top
  from featcon.analysis import table1  # pylint: disable=g-import-not-at-top
  config = real_experiment.get_config("ci" if FLAGS.reduced else "gpu")
  table1.check_config(config)
  t0 = time.time()
  distill.start_stage(config, FLAGS.out, "real_experiment", allow_changes=True)
  summary = table1.run(config, FLAGS.out, deadline=t0 + FLAGS.budget_s,
                       analyze_config=analyze.get_config("real"))
  missing = sorted(set(summary["jobs_planned"]) - set(summary["jobs_done"]))
  status = "complete" if not missing else f"missing (budget spent): {', '.join(missing)}"
  report = {"status": status, "wall_s": round(time.time() - t0, 1),
            "device": str(jax.devices()[0]), "platform": platform.platform(),
            "reduced": FLAGS.reduced, "fair_test": summary["fair_test"],
            "line_equation": summary.get("line_equation"), "rows": _headline(summary)}
  with open(os.path.join(FLAGS.out, "accelerator_real.json"), "w") as f:
    json.dump(report, f, indent=1)
  print(json.dumps(report, indent=1))


if __name__ == "__main__":
  app.run(main)
