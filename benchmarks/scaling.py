r"""How a sweep's wall time and peak memory grow with configurations, width and d.

  python -m benchmarks.scaling --steps=200

Each point runs in a fresh subprocess (peak RSS = the process's ru_maxrss, which includes
JAX's CPU buffers) on the online workload (batch 32, momentum-free SGD, hinge, frozen
output). Points: configurations {64, 256, 1024, 4096} at width 512; width {128, 512, 2048}
and d {64, 256, 1024} at 64 configurations. Prints a Markdown table.
"""
import json
import subprocess
import sys

from absl import app, flags

flags.DEFINE_integer("steps", 200, "training steps per configuration")
flags.DEFINE_float("budget_gb", 4.0, "sweep.memory_budget_gb")
flags.DEFINE_string("points", "configs,width,d", "which series to run")
FLAGS = flags.FLAGS

CHILD = r"""
import json, resource, sys, time
import numpy as np
import featcon
n, width, d, steps, budget = [float(a) for a in sys.argv[1:]]
n, width, d, steps = int(n), int(width), int(d), int(steps)
n_lr = 8 if n >= 8 else 1
cfg = {"seed": list(range(n // n_lr)), "data": {"regime": "online", "d": d, "n_eval": 1024},
       "model": {"width": width},
       "train": {"batch_size": 32, "momentum": 0.0, "lr": list(np.geomspace(1e-3, 1e-1, n_lr)),
                 "steps": steps, "log_every": steps},
       "sweep": {"memory_budget_gb": budget, "progress": False}}
t = time.perf_counter()
df = featcon.sweep(cfg)
wall = time.perf_counter() - t
tim = next(iter(df.attrs["timings"].values()))
print(json.dumps({"configs": n, "width": width, "d": d, "wall_s": wall,
                  "compile_s": tim["compile_s"], "chunk": tim["chunk"], "chunks": tim["chunks"],
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def point(n, width, d):
  p = subprocess.run([sys.executable, "-c", CHILD, str(n), str(width), str(d), str(FLAGS.steps),
                      str(FLAGS.budget_gb)], capture_output=True, text=True)
  if p.returncode:
    return {"configs": n, "width": width, "d": d, "error": p.stderr[-500:]}
  return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  rows = []
  series = FLAGS.points.split(",")
  if "configs" in series:
    rows += [point(n, 512, 256) for n in (64, 256, 1024, 4096)]
  if "width" in series:
    rows += [point(64, w, 256) for w in (128, 512, 2048)]
  if "d" in series:
    rows += [point(64, 512, d) for d in (64, 256, 1024)]
  print(f"steps = {FLAGS.steps}, memory budget {FLAGS.budget_gb} GiB\n")
  print("| configs | width | d | wall (s) | compile (s) | chunk x chunks | peak RSS (GiB) |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    if "error" in r:
      print(f"| {r['configs']} | {r['width']} | {r['d']} | error: {r['error'][:80]} | | | |")
    else:
      print(f"| {r['configs']} | {r['width']} | {r['d']} | {r['wall_s']:.1f} | "
            f"{r['compile_s']:.1f} | {r['chunk']} x {r['chunks']} | {r['peak_rss_gib']:.2f} |")


if __name__ == "__main__":
  app.run(main)
