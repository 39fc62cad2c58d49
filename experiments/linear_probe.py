r"""Linear probes on frozen (cached) features of the teacher and the distilled student:
AdamW/Adam with a cosine schedule and model selection on ID validation, plus closed-form ridge.

  python -m experiments.linear_probe --config=configs/distill/digits.py:tiny-rn --workdir=runs/digits_rn

Give the --config and overrides the distillation was run with: a config that differs from
distill_config.json in a field the distillation depends on is refused. Probes already trained
are reused only under the same probe settings (otherwise refused, or with --allow_config_change
retrained).
"""
from absl import flags, logging
from ml_collections import config_flags

from featcon import cli  # first: names `configs` in an installed featcon (featcon/cli.py)
from featcon.probe import stages as probe_run
from featcon import distill
from featcon import distributed

_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("configs/distill/digits.py"),
                                          "Experiment config.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of a finished distillation run.",
                               required=True)
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Continue in a workdir whose recorded config differs in fields that determine the results "
    "(the record keeps the old config in its history). Without it such a rerun is refused.")
distributed.add_flags(cpu_devices=1)  # deep stages: docs/scaling.md


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
