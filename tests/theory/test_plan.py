"""The planner is pure host code: expanding, grouping and chunking a sweep compiles nothing;
the command line reaches it in one config load (``--config.sweep.axes``, ``--axis``,
``--config.<field>`` pinning a swept field, conflicts)."""
import os

import jax
import pytest
from absl import flags
from ml_collections import config_flags

from experiments import sweep as sweep_main
from featcon.theory import config as config_lib
from featcon.theory import plan as plan_lib
from featcon.theory import program

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def compiles():
  """The names of the compile events JAX records while the test runs."""
  events = []
  listener = lambda name, *a, **kw: events.append(name) if "compile" in name else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  yield events
  jax.monitoring.unregister_event_duration_listener(listener)


def test_plan_groups_and_chunks_compile_nothing(compiles):
  cfg = {"data": {"regime": "online", "d": 24, "k_core": 4, "k_bg": 4},
         "model": {"width": [8, 16], "activation": ["relu", "tanh", "identity"]},
         "train": {"batch_size": [4, 8], "lr": [0.05, 0.1], "steps": 20, "log_every": 10},
         "seed": [0, 1]}
  plan = plan_lib.make_plan(cfg)
  groups = plan_lib.make_groups(plan.configs)
  sizes = [plan_lib.chunk_size(g.static, g.n_trainings, 1e-3) for g in groups]
  assert len(plan.points) == 2 * 3 * 2 * 2 * 2 and len(groups) == 2  # + the linear shortcut
  assert sorted(g.n_trainings for g in groups) == [16, 32] and all(s >= 1 for s in sizes)
  assert compiles == [], compiles


def test_product_order_and_record():
  plan = plan_lib.make_plan({"seed": [0, 1], "model": {"activation": ["relu", "identity"]},
                             "train": {"lr": [0.1, 0.2], "weight_decay": [0.0, 0.01]},
                             "sweep": {"zip": [("train.weight_decay", "train.lr")]}})
  assert list(plan.axes) == ["train.weight_decay", "train.lr", "model.activation", "seed"]
  assert [tuple(s.values()) for s, _ in plan.points[:3]] == [
      (0.0, 0.1, "relu", 0), (0.0, 0.1, "relu", 1), (0.0, 0.1, "identity", 0)]
  assert plan.record["train"]["lr"] == [0.1, 0.2] and plan.record["train"]["steps"] == 20000
  assert plan.record["sweep"] == {"zip": [["train.weight_decay", "train.lr"]],
                                  "memory_budget_gb": 4.0, "max_chunk": 4096, "max_configs": 20000,
                                 "share_batches": True, "progress": True}
  with pytest.raises(ValueError, match=r"sweep.zip names 'train.b1', which is not a swept"):
    plan_lib.make_plan({"seed": [0, 1], "sweep": {"zip": [("train.b1", "seed")]}})
  with pytest.raises(ValueError, match=r"'sweep.max_chunk' has value 0"):
    plan_lib.make_plan({"sweep": {"max_chunk": 0}})


def _load(argv):
  """The config, override values and --axis values of a command line, as experiments.sweep
  parses it (one load of the config file)."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=fv, lock_config=True,
                                 sys_argv=["sweep"] + argv)
  flags.DEFINE_multi_string("axis", [], "", flag_values=fv)
  fv(["sweep"] + argv)
  return fv["config"].value, config_flags.get_override_values(fv["config"]), fv["axis"].value


def _plan(argv):
  config, overrides, axis = _load(argv)
  return plan_lib.make_plan(config, axes=axis,
                            pinned=sweep_main.pinned_fields(overrides, axis))


SMOKE = os.path.join(ROOT, "configs", "theory.py") + ":smoke"


def test_command_line_axes_pins_and_overrides():
  plan = _plan([f"--config={SMOKE}"])
  assert plan.axes == {"model.activation": ["relu", "identity"], "model.width": [8, 16],
                       "seed": [0, 1]}
  # --config.sweep.axes replaces every axis; --config.x= is ml_collections' own override
  plan = _plan([f"--config={SMOKE}", "--config.sweep.axes=seed=0,1,2;model.width=4",
                "--config.train.steps=40"])
  assert plan.axes == {"model.width": [4], "seed": [0, 1, 2]}
  assert plan.record["train"]["steps"] == 40
  # --config.seed=5 pins the swept seed; --axis sets or replaces one axis
  plan = _plan([f"--config={SMOKE}", "--config.seed=5", "--axis=model.activation=relu,tanh",
                "--axis=train.lr=0.1,0.2"])
  assert plan.axes == {"model.activation": ["relu", "tanh"], "model.width": [8, 16],
                       "train.lr": [0.1, 0.2]}
  assert {c["seed"] for _, c in plan.points} == {5} and plan.record["seed"] == 5
  # a field pinned and swept at once is refused, naming it
  with pytest.raises(ValueError, match=r"'seed' is given both as --config.seed= .* and as --axis"):
    _plan([f"--config={SMOKE}", "--config.seed=5", "--axis=seed=0,1"])
  # a value of the wrong type is ml_collections' error, before anything runs
  with pytest.raises(flags.IllegalFlagValueError):
    _load([f"--config={SMOKE}", "--config.seed=one"])


def test_every_variant_plans():
  from configs import theory  # pylint: disable=import-outside-toplevel
  for name in theory.VARIANTS:
    plan = plan_lib.make_plan(theory.get_config(name))
    for _, c in plan.points:
      config_lib.resolve(c)
    assert plan.axes, name
  assert program.Static().n_logs == 20
