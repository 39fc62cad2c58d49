r"""The main job: a vectorised theory sweep.

  python -m experiments.sweep --config=configs/theory.py --workdir=runs/theory
  python -m experiments.sweep --config=configs/theory.py:online --config.train.steps=2000

Writes config.json, results.csv, trajectories.npz, summary.md and figures into --workdir;
rerunning with the same workdir resumes (finished groups are skipped).

On a multi-core CPU, ``--cpu_devices=N`` splits the CPU into N JAX devices and the sweep shards
its configurations over them. XLA:CPU runs the small batched matmuls of a sweep on one core, so
this helps where the per-configuration matrices are small (the online workload: 1.9x on 2
cores; the full-batch Figure 8 workload: no gain). Results equal the single-device run.
"""
import jax
from absl import app, flags
from ml_collections import config_flags

from featcon.theory import sweeps as sweep_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/theory.py", "Sweep config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/theory", "Folder for results (resumable).")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "If > 0, expose the CPU as this many JAX devices (set before JAX starts).",
    lower_bound=0)


def main(argv):
  del argv
  if _CPU_DEVICES.value:
    jax.config.update("jax_num_cpu_devices", _CPU_DEVICES.value)
  sweep_lib.run(_CONFIG.value, workdir=_WORKDIR.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(main)
