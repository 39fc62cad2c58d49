r"""Representation distillation (Section 2): teacher frozen, student of the same architecture
from random init, MSE on the final representation (+ per-block MSE for ViTs).

  python -m experiments.distill --config=configs/distill/digits.py:tiny-rn --workdir=runs/digits_rn

Resumes automatically from the latest checkpoint under --workdir, if the config recorded there
(distill_config.json) agrees on every field that determines the results; otherwise refuses,
naming the fields, unless --allow_config_change. Default config: the offline
digits benchmark (about a minute on 2 CPU cores). Paper-scale configs: configs/distill/*.py.
"""
from absl import logging

from featcon import cli
from featcon import distill
from featcon import distributed

_CONFIG, _WORKDIR, _ALLOW_CHANGE = cli.stage_flags("Output directory (resumed if it exists).")


def main(argv):
  del argv
  distributed.initialize()
  logging.set_verbosity(logging.INFO)
  distill.start_stage(_CONFIG.value, _WORKDIR.value, "distill", _ALLOW_CHANGE.value)
  distill.distill(_CONFIG.value, _WORKDIR.value, allow_changes=_ALLOW_CHANGE.value)


def run():
  """Console-script entry point (``featcon-distill``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
