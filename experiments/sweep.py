r"""The main job: a vectorised theory sweep.

  python -m experiments.sweep --config=configs/theory.py --workdir=runs/theory
  python -m experiments.sweep --config=configs/theory.py:online --config.train.steps=2000
  python -m experiments.sweep --config=configs/theory.py --config.seed=5
  python -m experiments.sweep --config=configs/theory.py:smoke \
      --axis=model.activation=relu,gelu,tanh --axis=seed=0,1,2

Writes config.json, results.csv, trajectories.npz, summary.md and figures into --workdir;
rerunning with the same workdir resumes (finished groups are skipped).

Sweep axes on the command line (docs/sweeps.md):

* ``--config.<field>=<value>`` on a field the config file sweeps (a list, such as ``seed`` or
  ``model.activation`` of the default config) runs that single value instead of the axis;
  ``--config.<field>=[v1,v2]`` (a list literal) makes any field an axis.
* ``--axis=<field>=<v1>,<v2>,...`` (repeatable) sets or replaces the axis of ``<field>``.

Values are typed like the field's default (int, float, bool, str; tuples as ``(a,b)``) and
checked before anything runs; a bad one is an error naming the field, the value and what is
allowed. Fields zipped by ``sweep.zip`` must be given equal lengths. Other ``--config.x=v``
overrides are ml_collections' own.

On a CPU the sweep exposes every core as a JAX device and shards its configurations over them
(``--cpu_devices=1``: one device; N: N devices). XLA:CPU runs the small batched matmuls of a
sweep on one core per device, so this helps where the per-configuration matrices are small (the
online workload: 1.9x on 2 cores; the full-batch Figure 8 workload: no gain). Results equal the
single-device run. Several hosts: ``--coordinator_address --num_processes --process_id`` or a
SLURM/TPU launcher (docs/scaling.md).
"""
import runpy
import sys

from absl import app, flags
from ml_collections import config_flags

from featcon import cli  # first: names `configs` in an installed featcon (featcon/cli.py)
from featcon import distributed
from featcon.theory import axes as axes_lib
from featcon.theory import sweeps as sweep_lib

_DEFAULT_CONFIG = cli.config_path("configs/theory.py")
_CONFIG = config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG,
    "Sweep config file (path[:variant]). --config.<field>=<value> on a field the file sweeps "
    "runs that single value; --config.<field>=[v1,v2] makes a field an axis.",
    lock_config=True)
_AXIS = flags.DEFINE_multi_string(
    "axis", [],
    "Sets or replaces a sweep axis: <field>=<v1>,<v2>,... (repeatable), e.g. "
    "--axis=model.activation=relu,gelu,tanh --axis=seed=0,1,2. Values are typed like the "
    "field's default (int/float/bool/str; tuples as (a,b)).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/theory", "Folder for results (resumable).")
distributed.add_flags(cpu_devices=0)

_SINGLES = {}


def _config_spec(argv):
  for i, arg in enumerate(argv):
    if arg.startswith(("--config=", "-config=")):
      return arg.split("=", 1)[1]
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
  return _DEFAULT_CONFIG


def _swept_in_file(spec):
  """The list-valued fields of the config file ``spec`` (empty if it cannot be loaded here;
  absl then reports the problem)."""
  path, _, arg = spec.partition(":")
  try:
    get_config = runpy.run_path(path)["get_config"]
    return axes_lib.swept_fields(get_config(arg) if arg else get_config())
  except Exception:  # pylint: disable=broad-except
    return []


def parse_flags(argv):
  """absl's flag parsing, after taking out the overrides that are applied as axes."""
  rest, singles = axes_lib.split_argv(argv[1:], _swept_in_file(_config_spec(argv[1:])))
  _SINGLES.clear()
  _SINGLES.update(singles)
  sys.argv = [argv[0]] + rest  # ml_collections reads --config.* overrides from sys.argv
  return app.parse_flags_with_usage(sys.argv)


def main(argv):
  del argv
  distributed.initialize()
  try:
    config = axes_lib.apply_axes(_CONFIG.value, _AXIS.value, _SINGLES)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  sweep_lib.run(config, workdir=_WORKDIR.value, log=lambda s: print(s, flush=True))


def run():
  """Console-script entry point (``featcon-sweep``)."""
  cli.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
