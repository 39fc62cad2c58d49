r"""The main job: a vectorised theory sweep.

  python -m experiments.sweep --config=configs/theory.py --workdir=runs/theory
  python -m experiments.sweep --config=configs/theory.py:online --config.train.steps=2000
  python -m experiments.sweep --config=configs/theory.py --config.seed=5
  python -m experiments.sweep --config=configs/theory.py:smoke \
      --axis=model.activation=relu,gelu,tanh --axis=seed=0,1,2

Writes config.json, results.csv, trajectories.npz, summary.md and figures into --workdir;
rerunning with the same workdir resumes (finished groups are skipped).

Sweep axes on the command line (docs/sweeps.md): the config file declares them in
``sweep.axes``; ``--config.sweep.axes='seed=0,1;model.width=8,16'`` replaces them all,
``--axis=<field>=<v1>,<v2>,...`` (repeatable) sets or replaces one, and
``--config.<field>=<value>`` on a swept field runs that single value instead of the axis
(``--config.seed=5``). Every ``--config.x=v`` is ml_collections' own override; values are
checked before anything runs, and a bad one is an error naming the field, the value and what is
allowed. A field both pinned with ``--config.<field>`` and given with ``--axis`` is refused.

On a CPU the sweep exposes every core as a JAX device and shards its configurations over them
(``--cpu_devices=1``: one device; N: N devices). XLA:CPU runs the small batched matmuls of a
sweep on one core per device, so this helps where the per-configuration matrices are small (the
online workload: 1.9x on 2 cores; the full-batch Figure 8 workload: no gain). Results equal the
single-device run. Several hosts: ``--coordinator_address --num_processes --process_id`` or a
SLURM/TPU launcher (docs/scaling.md).
"""
from absl import app, flags
from ml_collections import config_flags

from featcon import cli
from featcon import distributed
from featcon import jax_cache
from featcon.theory import plan as plan_lib
from featcon.theory import schema
from featcon.theory import sweeps as sweep_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", cli.config_path("configs/theory.py"),
    "Sweep config file (path[:variant]). --config.<field>=<value> on a swept field runs that "
    "single value; --config.sweep.axes='f=v1,v2;...' replaces the axes.", lock_config=True)
_AXIS = flags.DEFINE_multi_string(
    "axis", [],
    "Sets or replaces a sweep axis: <field>=<v1>,<v2>,... (repeatable), e.g. "
    "--axis=model.activation=relu,gelu,tanh --axis=seed=0,1,2. Values are typed like the "
    "field's default (int/float/bool/str; tuples as (a,b)).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/theory", "Folder for results (resumable).")
_CACHE = flags.DEFINE_string(
    "compilation_cache", "", "Folder of JAX's persistent compilation cache (a rerun of the same "
    "sweep loads its programs instead of compiling them); empty: $FEATCON_JAX_CACHE or "
    "~/.cache/featcon/jax; 'off': no cache.")
distributed.add_flags(cpu_devices=0)


def pinned_fields(overrides, axis_specs):
  """The theory fields set with ``--config.<field>=`` (``overrides``: ml_collections'
  override values), which run one value instead of their axis; refuses a field also given
  with ``--axis``."""
  pinned = [f for f in overrides if f in schema.BY_NAME and not f.startswith("sweep.")]
  swept = {spec.partition("=")[0].strip() for spec in axis_specs}
  both = sorted(set(pinned) & swept)
  if both:
    raise ValueError(f"config field {both[0]!r} is given both as --config.{both[0]}= (one value) "
                     f"and as --axis={both[0]}=... (an axis); allowed: one of the two")
  return pinned


def main(argv):
  del argv
  distributed.initialize()
  try:
    pinned = pinned_fields(config_flags.get_override_values(flags.FLAGS["config"]), _AXIS.value)
    plan = plan_lib.make_plan(_CONFIG.value, axes=_AXIS.value, pinned=pinned)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if _CACHE.value != "off":
    jax_cache.enable(_CACHE.value or None)
  sweep_lib.run(plan, workdir=_WORKDIR.value, log=lambda s: print(s, flush=True))


def run():
  """Console-script entry point (``featcon-sweep``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
