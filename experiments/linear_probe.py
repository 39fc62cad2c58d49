r"""Linear probes on frozen (cached) features of the teacher and the distilled student:
AdamW/Adam with a cosine schedule and model selection on ID validation, plus closed-form ridge.

  python -m experiments.linear_probe --config=configs/distill/digits.py:tiny-rn --workdir=runs/digits_rn

Give the --config and overrides the distillation was run with: a config that differs from
distill_config.json in a field the distillation depends on is refused. Probes already trained
are reused only under the same probe settings (otherwise refused, or with --allow_config_change
retrained).
"""
from absl import logging

from featcon import cli
from featcon.probe import stages as probe_run
from featcon import distill
from featcon import distributed

_CONFIG, _WORKDIR, _ALLOW_CHANGE = cli.stage_flags("Directory of a finished distillation run.")


def main(argv):
  del argv
  distributed.initialize()
  logging.set_verbosity(logging.INFO)
  distill.start_stage(_CONFIG.value, _WORKDIR.value, "linear_probe", _ALLOW_CHANGE.value)
  probe_run.train_probes(_CONFIG.value, _WORKDIR.value)


def run():
  """Console-script entry point (``featcon-linear-probe``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
