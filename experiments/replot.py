r"""Redraws figures from the results saved beside them (featcon.analysis.replot), for when the run
directory that made them is gone:

  python -m experiments.replot --real_experiment=docs/results/real_experiment
  python -m experiments.replot --analyses=docs/results/real_analyses/analyses.json \
      --encoders=teacher,student_s0,random_s0,supervised_s0 \
      --out=docs/results/real_analyses/selectivity_seed0.png

--real_experiment rewrites scatter.png and teacher_heldout.png there from summary.json;
--analyses draws the selectivity bars of the named encoders into --out.
"""
from absl import flags

from featcon import cli
from featcon.analysis import replot
from featcon.errors import ConfigError

_REAL = flags.DEFINE_string("real_experiment", "", "An experiments.real_experiment folder with "
                            "summary.json: redraws scatter.png and teacher_heldout.png there.")
_ANALYSES = flags.DEFINE_string("analyses", "", "analyses.json or selectivity.json of "
                                "experiments.analyze: redraws its selectivity bars into --out.")
_ENCODERS = flags.DEFINE_list("encoders", [], "With --analyses: the encoders to draw (default: "
                              "all in the file).")
_OUT = flags.DEFINE_string("out", "", "With --analyses: the PNG to write.")
_SETTING = flags.DEFINE_string("setting", "", "With --analyses: a second title line (data, seed).")


def main(argv):
  del argv
  if not _REAL.value and not _ANALYSES.value:
    raise ConfigError("give --real_experiment=DIR and/or --analyses=FILE --out=PNG")
  if _ANALYSES.value and not _OUT.value:
    raise ConfigError(f"--analyses={_ANALYSES.value} needs --out=<file.png>")
  written = []
  if _REAL.value:
    written += replot.real_experiment_figures(_REAL.value)
  if _ANALYSES.value:
    setting = f"\n{_SETTING.value}" if _SETTING.value else ""
    written.append(replot.selectivity_figure_from_json(_ANALYSES.value, _OUT.value,
                                                       _ENCODERS.value, setting))
  print("replot: wrote " + ", ".join(written))


def run():
  """Console-script entry point (``featcon-replot``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
