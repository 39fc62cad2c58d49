"""Entry point of the deep-network analyses; see configs/analyze.py for command lines.

Runs `featcon.analysis.experiment.run(config, workdir)` and prints its headline numbers; every
number is in the JSON files under `--workdir`.
"""
from absl import flags
from ml_collections import config_flags

from featcon import cli
from featcon import distributed
from featcon import training as train_lib
from featcon.analysis import experiment

_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("configs/analyze.py"), lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for PNG and JSON outputs.")
distributed.add_flags(cpu_devices=1)  # deep stages: docs/scaling.md


def _main(argv):
  del argv
  distributed.initialize()
  if not _WORKDIR.value:
    raise ValueError("--workdir is required")
  train_lib.quiet_orbax_logs()
  results = experiment.run(_CONFIG.value, _WORKDIR.value)
  print(experiment.summary_text(results))
  print(f"All numbers and figures: {_WORKDIR.value}")


def run():
  """Console-script entry point (``featcon-analyze``)."""
  cli.run(_main)


if __name__ == "__main__":
  run()
