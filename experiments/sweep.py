r"""The main job: a vectorised theory sweep.

  python -m experiments.sweep --config=configs/theory.py --workdir=runs/theory
  python -m experiments.sweep --config=configs/theory.py:online --config.train.steps=2000

Writes config.json, results.csv, trajectories.npz, summary.md and figures into --workdir;
rerunning with the same workdir resumes (finished groups are skipped).

On a CPU the sweep exposes every core as a JAX device and shards its configurations over them
(``--cpu_devices=1``: one device; N: N devices). XLA:CPU runs the small batched matmuls of a
sweep on one core per device, so this helps where the per-configuration matrices are small (the
online workload: 1.9x on 2 cores; the full-batch Figure 8 workload: no gain). Results equal the
single-device run. Several hosts: ``--coordinator_address --num_processes --process_id`` or a
SLURM/TPU launcher (docs/scaling.md).
"""
from absl import app, flags
from ml_collections import config_flags

from featcon import distributed
from featcon.theory import sweeps as sweep_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/theory.py", "Sweep config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/theory", "Folder for results (resumable).")
distributed.add_flags(cpu_devices=0)


def main(argv):
  del argv
  distributed.initialize()
  sweep_lib.run(_CONFIG.value, workdir=_WORKDIR.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(main)
