r"""The paper's Table 1 on real weights (configs/distill/real_experiment.py): a teacher
fine-tuned from released EfficientNet-Lite0 weights on broad data, students distilled from it on
ID images over seeds, the other rows, the shifts in covered / held-out groups, the fair-test
check, the background-swap test, the analyses and the ablations, in one resumable command.

  python -m experiments.real_experiment --config=configs/distill/real_experiment.py \
      --workdir=runs/real_experiment

The experiment is :func:`featcon.analysis.table1.run` (layout and definitions in its docstring);
finished run directories are reused when their config is unchanged. Writes summary.json,
summary.md, scatter.png (Figure 1) and teacher_heldout.png into --workdir.
"""
from absl import flags, logging
from ml_collections import config_flags

from featcon import cli
from configs import analyze
from featcon import distill
from featcon.analysis import table1

_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("configs/distill/real_experiment.py"),
                                          "Experiment config.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (resumed if it exists).",
                               required=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  config = _CONFIG.value
  table1.check_config(config)  # every experiment field, before any work
  # The root record keeps the history of the settings the folder ran under; whether a finished
  # run directory is reused is decided per directory by its own fingerprint (table1.jobs).
  distill.start_stage(config, _WORKDIR.value, "real_experiment", allow_changes=True)
  summary = table1.run(config, _WORKDIR.value, analyze_config=analyze.get_config("real"))
  print(table1.markdown(summary))


def run():
  """Console-script entry point (``featcon-real-experiment``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
