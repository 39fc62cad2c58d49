r"""The shift sweep trained once vs once per shift, side by side in one process.

  python -m benchmarks.shift_sweep [--variant=shift] [--reps=1]

``configs/theory.py:<variant>`` (default ``shift``: OOD risk against the shift strength) runs
through :func:`featcon.theory.runner.run_group` twice, alternately: with the configurations
that differ only in ``data.shift`` sharing one training (the engine's default) and with one
training per configuration (``make_groups(..., share_training=False)``). Prints the wall time
of each (compile included, and separately), the speed-up, the load average, and the largest
difference between the two paths' metrics. Both paths run their groups as ``experiments.sweep``
does, each next group compiling while the previous one trains.
"""
import json
import os
import time

import numpy as np
from absl import app, flags

import featcon
from configs import theory
from featcon.theory import plan
from featcon.theory import runner

flags.DEFINE_string("variant", "shift", "configs/theory.py variant")
flags.DEFINE_integer("reps", 1, "alternating repetitions of both paths")
flags.DEFINE_integer("cpu_devices", 0, "CPU devices the configurations are sharded over "
                     "(featcon.use_all_cpu_cores): 0 = one per core, as experiments.sweep does")
FLAGS = flags.FLAGS


def _run(groups, n):
  """Runs the groups as :func:`featcon.theory.sweeps.run` does (``runner.run_groups``: each next
  group compiles while the previous one trains). Returns (wall s, compile s not overlapped with
  training, metrics)."""
  t = time.perf_counter()
  metrics, compile_s = [None] * n, 0.0
  for g, m, _, timing in runner.run_groups(groups, progress=False):
    compile_s += 0.0 if timing["compiled_ahead"] else timing["compile_s"]
    for j, i in enumerate(g.indices):
      metrics[i] = {k: v[j] for k, v in m.items()}
  return time.perf_counter() - t, compile_s, metrics


def main(_):
  featcon.use_all_cpu_cores(FLAGS.cpu_devices)
  cfg = theory.get_config(FLAGS.variant)
  resolved = [featcon.resolve_config(c) for _, c in plan.expand(cfg)]
  paths = {"shared": plan.make_groups(resolved),
           "per_shift": plan.make_groups(resolved, share_training=False)}
  load = os.getloadavg()
  times = {k: [] for k in paths}
  out = {}
  for _ in range(FLAGS.reps):
    for name, groups in paths.items():
      wall, comp, out[name] = _run(groups, len(resolved))
      times[name].append((wall, comp))
  diff = max(float(np.nanmax(np.abs(a[k] - b[k]), initial=0.0))
             for a, b in zip(out["shared"], out["per_shift"]) for k in a)
  res = {"variant": FLAGS.variant, "configs": len(resolved),
         "trainings": {k: sum(g.n_trainings for g in v) for k, v in paths.items()},
         "load_avg_before": load}
  for name in paths:
    res[f"{name}_wall_s"] = float(np.median([w for w, _ in times[name]]))
    res[f"{name}_compile_s"] = float(np.median([c for _, c in times[name]]))
  res["speedup"] = res["per_shift_wall_s"] / res["shared_wall_s"]
  res["speedup_without_compile"] = ((res["per_shift_wall_s"] - res["per_shift_compile_s"])
                                    / (res["shared_wall_s"] - res["shared_compile_s"]))
  res["max_abs_diff"] = diff
  res["load_avg_after"] = os.getloadavg()
  print(json.dumps(res, indent=2))


if __name__ == "__main__":
  app.run(main)
