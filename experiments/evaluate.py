r"""Evaluates every probe on every ID and OOD set, fits the baseline in logit space and reports
effective robustness (Taori et al. 2020) and the Figure 1 scatter plot.

  python -m experiments.evaluate --config=configs/distill/digits.py:tiny-rn --workdir=runs/digits_rn

Writes results.json (with config and package versions), results.md and scatter.png. A config
that differs from linear_probe_config.json in a field the probes depend on is refused.
"""
from absl import logging

from featcon import cli
from featcon import distill
from featcon import distributed
from featcon.probe import stages as probe_run

_CONFIG, _WORKDIR, _ = cli.stage_flags("Directory with trained probes.", allow_config_change=False)


def main(argv):
  del argv
  distributed.initialize()
  logging.set_verbosity(logging.INFO)
  distill.start_stage(_CONFIG.value, _WORKDIR.value, "evaluate")
  results = probe_run.evaluate(_CONFIG.value, _WORKDIR.value)
  print(results["table_md"])


def run():
  """Console-script entry point (``featcon-evaluate``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
