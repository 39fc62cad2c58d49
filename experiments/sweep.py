r"""The main job: a vectorised theory sweep.

  python -m experiments.sweep --config=configs/theory.py --workdir=runs/theory
  python -m experiments.sweep --config=configs/theory.py:online --config.train.steps=2000

Writes config.json, results.csv, trajectories.npz, summary.md and figures into --workdir;
rerunning with the same workdir resumes (finished groups are skipped).
"""
from absl import app, flags
from ml_collections import config_flags

from featcon import sweeps as sweep_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/theory.py", "Sweep config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/theory", "Folder for results (resumable).")


def main(argv):
  del argv
  sweep_lib.run(_CONFIG.value, workdir=_WORKDIR.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(main)
