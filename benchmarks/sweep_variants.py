r"""Wall time of every variant of ``configs/theory.py``, each the command a user runs.

  python -m benchmarks.sweep_variants [--variants=default,theory,...] [--out=FILE.json]
      [--workdir=DIR]

Each variant runs as ``python -m experiments.sweep --config=configs/theory.py:<variant>`` in a
fresh process with a fresh workdir (so nothing is resumed and the compile is counted), one
after the other, with the entry point's defaults (every CPU core a JAX device). Prints a
Markdown table of the configurations, compiled groups and wall time of each, with the load
average before and after each run (the machine's idle state is part of the measurement).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from configs import theory

flags.DEFINE_list("variants", list(theory.VARIANTS), "configs/theory.py variants to time")
flags.DEFINE_string("out", "", "optional JSON file for the numbers")
flags.DEFINE_string("workdir", "", "keep each variant's results in <workdir>/<variant> (must not "
                    "exist yet, so nothing is resumed); default: a temporary folder")
FLAGS = flags.FLAGS

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def time_variant(variant, workdir, extra=()):
  """Runs one variant as a user would; returns its wall time and what the sweep printed."""
  cmd = [sys.executable, "-m", "experiments.sweep", f"--config=configs/theory.py:{variant}",
         f"--workdir={workdir}", *extra]
  load = os.getloadavg()[0]
  t = time.perf_counter()
  p = subprocess.run(cmd, capture_output=True, text=True, cwd=_ROOT, check=False)
  wall = time.perf_counter() - t
  if p.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
  head = re.search(r"sweep: (\d+) configurations in (\d+) compiled group", p.stdout)
  return {"variant": variant, "wall_s": wall, "configs": int(head.group(1)),
          "groups": int(head.group(2)), "load_before": load, "load_after": os.getloadavg()[0]}


def markdown(rows):
  lines = ["| variant | configurations | compiled groups | wall (s) | load average before / after |",
           "|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| `{r['variant']}` | {r['configs']} | {r['groups']} | {r['wall_s']:.1f} | "
                 f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
  return "\n".join(lines)


def main(argv):
  del argv
  unknown = [v for v in FLAGS.variants if v not in theory.VARIANTS]
  if unknown:
    raise app.UsageError(f"--variants: {unknown} not in {theory.VARIANTS}")
  if FLAGS.workdir and os.path.exists(FLAGS.workdir):
    raise app.UsageError(f"--workdir={FLAGS.workdir} exists; the timings need fresh runs")
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    base = FLAGS.workdir or tmp
    for v in FLAGS.variants:
      rows.append(time_variant(v, os.path.join(base, v)))
      print(f"{v}: {rows[-1]['wall_s']:.1f} s", flush=True)
  print(markdown(rows))
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)
