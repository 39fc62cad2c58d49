r"""The offline benchmark over architectures and seeds (featcon.probe.benchmark): distil ->
probe -> evaluate for each (model, seed) of configs/distill/digits.py, then one summary table.

  python -m experiments.digits_benchmark --workdir=runs/digits_benchmark --seeds=0,1,2 \
      --models=tiny-rn,mlp-relu,mlp-identity,tiny-vit

Each run lives in --workdir/<model>_s<seed> and resumes like the single entry points. The
theory students (mlp-relu, mlp-identity) reuse the tiny-rn teacher of the same seed (its
checkpoints are copied, not retrained). Writes summary.json and summary.md after every run.
About 2-3 minutes per (architecture, seed) on a 2-core CPU.
"""
from absl import flags, logging

from featcon import cli
from configs.distill import digits
from featcon import distributed
from featcon.probe import benchmark

_WORKDIR = flags.DEFINE_string("workdir", "runs/digits_benchmark", "Output directory.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_MODELS = flags.DEFINE_list("models", ["tiny-rn", "mlp-relu", "mlp-identity", "tiny-vit"],
                            "Arguments of configs/distill/digits.py.")
_PROBE = flags.DEFINE_enum("probe", "adamw", ["adamw", "ridge"], "Probe in the summary.")
distributed.add_flags(cpu_devices=1)  # deep stages: docs/scaling.md


def main(argv):
  del argv
  distributed.initialize()
  logging.set_verbosity(logging.INFO)
  print(benchmark.run_benchmark(digits.get_config, _WORKDIR.value, _MODELS.value,
                                [int(s) for s in _SEEDS.value], _PROBE.value))


def run():
  """Console-script entry point (``featcon-digits-benchmark``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
