"""The sweep engine: expansion, equality with simulate, padding, sharding, resume, CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import featcon
from featcon.theory import plan as plan_lib
from featcon.theory import program
from featcon.theory import runner
from featcon.theory import sweeps as sweep_lib
from tests.helpers import merge, sweep_on_host_devices

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BASE = {"data": {"d": 24, "k_core": 4, "k_bg": 4, "n_train": 64, "n_eval": 256},
        "model": {"width": 16}, "train": {"steps": 60, "log_every": 20, "lr": 5e-2}}


def _cfg(**over):
  return merge(BASE, over)


def test_expand_product_and_zip():
  cfg = _cfg(seed=[0, 1], train={"lr": [0.1, 0.2, 0.3], "weight_decay": [0.0, 1e-3, 1e-2]},
             sweep={"zip": [("train.lr", "train.weight_decay")]})
  ex = plan_lib.expand(cfg)
  assert len(ex) == 2 * 3
  pairs = {(s["train.lr"], s["train.weight_decay"]) for s, _ in ex}
  assert pairs == {(0.1, 0.0), (0.2, 1e-3), (0.3, 1e-2)}
  assert len(plan_lib.expand(_cfg(seed=[0, 1], train={"lr": [0.1, 0.2]}))) == 4
  with pytest.raises(ValueError, match="different lengths"):
    plan_lib.expand(_cfg(train={"lr": [0.1, 0.2], "weight_decay": [0.0]},
                          sweep={"zip": [("train.lr", "train.weight_decay")]}))
  with pytest.raises(ValueError, match="unknown config field 'sweep.colour'"):
    plan_lib.expand(_cfg(sweep={"colour": 1}))


def test_grouping_compiles_once_for_values_widths_batches_activations():
  cfg = _cfg(seed=[0, 1], data={"regime": "online"},
             model={"width": [8, 16], "activation": ["relu", "tanh"]},
             train={"batch_size": [4, 8], "lr": [0.05, 0.1]})
  ex = plan_lib.expand(cfg)
  groups = plan_lib.make_groups([featcon.resolve_config(c) for _, c in ex])
  assert len(ex) == 32 and len(groups) == 1
  g = groups[0]
  assert (g.static.width, g.static.batch, g.static.activations) == (16, 8, ("relu", "tanh"))
  # a change of d or loss needs another program
  cfg2 = _cfg(data={"d": [24, 32]}, train={"loss": ["hinge", "logistic"]})
  ex2 = plan_lib.expand(cfg2)
  assert len(plan_lib.make_groups([featcon.resolve_config(c) for _, c in ex2])) == 4
  # the identity activation runs the linear shortcut: its own (cheap) program, unless disabled
  for shortcut, n_groups in ((True, 2), (False, 1)):
    cfg3 = _cfg(model={"activation": ["relu", "identity", "tanh"]},
                train={"linear_shortcut": shortcut})
    groups = plan_lib.make_groups([featcon.resolve_config(c) for _, c in plan_lib.expand(cfg3)])
    assert len(groups) == n_groups
    assert sorted(g.static.linear for g in groups) == [False, shortcut][:n_groups]


@pytest.mark.slow
def test_sweep_equals_simulate_one_by_one():
  cfg = _cfg(seed=[0, 3], model={"width": [8, 16], "activation": ["relu", "identity"]},
             train={"lr": [0.02, 0.05]}, sweep={"zip": [("seed", "train.lr")]})
  df = featcon.sweep(cfg)
  for swept, single in plan_lib.expand(cfg):
    r = featcon.simulate(single)
    sel = np.ones(len(df), bool)
    for k, v in swept.items():
      sel &= (df[k.split(".")[-1]] == v).values
    sub = df[sel].sort_values("step")
    assert len(sub) == 4
    for key in ("id_risk", "ood_risk", "core_corr", "bg_corr", "bg_signed", "asym_frac"):
      np.testing.assert_allclose(sub[key].values, r.metrics[key], rtol=2e-5, atol=1e-6,
                                 err_msg=f"{swept} {key}")


def test_chunking_keeps_results(monkeypatch):
  cfg = _cfg(seed=[0, 1, 2, 3, 4])
  whole = featcon.sweep(cfg)
  monkeypatch.setattr(program, "bytes_per_config", lambda static: 2**30)  # 2 per chunk
  chunked = featcon.sweep(dict(cfg, sweep={"memory_budget_gb": 2.0}))
  assert chunked.attrs["timings"][next(iter(chunked.attrs["timings"]))]["chunks"] == 3
  pd.testing.assert_frame_equal(whole, chunked)


def test_next_group_compiles_while_the_previous_trains(monkeypatch):
  """run() compiles group 2 while group 1 trains (right after group 1's dispatch); each group's
  metrics equal the group run on its own with a compile of its own."""
  cfg = _cfg(seed=[0, 1], model={"activation": ["relu", "identity"]})
  order = []
  real_compile, real_run = runner.compile_group, runner.run_group
  monkeypatch.setattr(runner, "compile_group", lambda g, *a, **kw: order.append(
      ("compile", g.key)) or real_compile(g, *a, **kw))
  monkeypatch.setattr(runner, "run_group",
                      lambda g, *a, **kw: order.append(("run", g.key)) or real_run(g, *a, **kw))
  df = sweep_lib.run(cfg, log=lambda s: None)
  monkeypatch.undo()
  groups = plan_lib.make_groups([featcon.resolve_config(c) for _, c in plan_lib.expand(cfg)])
  first, second = (g.key for g in groups)
  assert order == [("run", first), ("compile", first), ("compile", second), ("run", second)]
  t1, t2 = (df.attrs["timings"][k] for k in (first, second))
  assert not t1["compiled_ahead"] and t2["compiled_ahead"]
  assert 0 < t1["ahead_s"] < t1["wall_s"] and t2["ahead_s"] == 0.0
  n_logs = 1 + BASE["train"]["steps"] // BASE["train"]["log_every"]
  for g in groups:  # tidy rows: configuration i holds rows i * n_logs ... (i + 1) * n_logs - 1
    alone, _, _ = real_run(g, progress=False)
    for key in ("id_risk", "ood_risk", "bg_signed", "train_loss"):
      got = df[key].values.reshape(len(df) // n_logs, n_logs)[g.indices]
      np.testing.assert_array_equal(got, alone[key], err_msg=key)


def test_precompiled_program_must_match_the_chunking():
  (group,) = plan_lib.make_groups([featcon.resolve_config(c)
                                    for _, c in plan_lib.expand(_cfg(seed=[0, 1, 2]))])
  compiled = runner.compile_group(group, runner.Limits(max_chunk=2), progress=False)
  with pytest.raises(ValueError, match=r"compiled for 2 chunk\(s\) of 2, the group needs 1 of 3"):
    runner.run_group(group, progress=False, program=compiled)


def test_chunk_size_follows_memory_budget():
  static = program.Static(width=1024, d=256, n_eval=4096)
  per = program.bytes_per_config(static)
  fit = int(2**30 // per)
  size = plan_lib.chunk_size(static, 10_000, 1.0)
  n_chunks = -(-10_000 // size)
  assert size <= fit and n_chunks == -(-10_000 // fit)  # within budget, fewest chunks
  assert size * n_chunks - 10_000 < n_chunks             # even: padding < one per chunk
  assert plan_lib.chunk_size(static, 3, 1.0) == 3
  assert plan_lib.chunk_size(static, 10_000, 1.0, n_devices=4) % 4 == 0
  # 64 configurations that need two chunks run as 2 x 32 (not 50 + 14 padded to 2 x 50)
  budget = 50.5 * per / 2**30
  assert plan_lib.chunk_size(static, 64, budget) == 32


@pytest.mark.slow
def test_sharded_equals_unsharded(tmp_path):
  """Two forced host devices shard the configuration axis; results equal one device."""
  # K = 64: with the QR inside the sharded program this size hung XLA:CPU (see run_group)
  cfg = _cfg(seed=[0, 1, 2], train={"lr": [0.02, 0.05]}, data={"d": 64, "k_core": 32, "k_bg": 32})
  outs = sweep_on_host_devices(tmp_path, cfg, ("ood_risk", "bg_signed"))
  # Compiled separately (fusions may differ): float32 rounding, measured up to 2.6e-6 relative
  # on bg_signed (a mean of signed terms) at XLA level 0; a mis-sharded configuration is O(1).
  np.testing.assert_allclose(outs[0]["ood_risk"], outs[1]["ood_risk"], rtol=1e-5)
  np.testing.assert_allclose(outs[0]["bg_signed"], outs[1]["bg_signed"], rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_resume_skips_finished_groups_and_refuses_changed_config(tmp_path, monkeypatch):
  cfg = _cfg(seed=[0, 1], train={"loss": ["hinge", "logistic"]})
  wd = str(tmp_path / "wd")
  calls = []
  real = runner.run_group

  def flaky(group, *a, **kw):
    if calls:  # the second group "crashes"
      raise KeyboardInterrupt
    calls.append(1)
    return real(group, *a, **kw)

  monkeypatch.setattr(runner, "run_group", flaky)
  with pytest.raises(KeyboardInterrupt):
    sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  assert len([f for f in os.listdir(os.path.join(wd, "groups")) if f.endswith(".json")]) == 1
  ran = []
  monkeypatch.setattr(runner, "run_group", lambda g, *a, **kw: ran.append(1) or real(g, *a, **kw))
  df = sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  assert len(ran) == 1  # only the unfinished group ran
  monkeypatch.setattr(runner, "run_group", real)
  fresh = sweep_lib.run(cfg, workdir=str(tmp_path / "fresh"), log=lambda s: None)
  pd.testing.assert_frame_equal(df, fresh)
  with pytest.raises(ValueError, match="records sweep results made under a different config"):
    sweep_lib.run(_cfg(seed=[0, 1, 2]), workdir=wd, log=lambda s: None)


@pytest.mark.slow
def test_cli_smoke_config(tmp_path):
  wd = tmp_path / "smoke"
  p = subprocess.run([sys.executable, "-m", "experiments.sweep",
                      "--config=configs/theory.py:smoke", f"--workdir={wd}",
                      "--config.train.steps=40"],
                     capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert p.returncode == 0, p.stderr[-3000:]
  assert "id_risk" in p.stdout and "ood_risk" in p.stdout
  for f in ("config.json", "results.csv", "trajectories.npz", "summary.md", "curves.png",
            "asymmetry.png"):
    assert (wd / f).exists(), f
  meta = json.loads((wd / "config.json").read_text())
  assert meta["versions"]["featcon"] == featcon.__version__ and meta["config"]["train"]["steps"] == 40
  df = pd.read_csv(wd / "results.csv")
  assert set(df["step"]) == {0, 20, 40} and {"seed", "width", "activation"} <= set(df.columns)
  assert len(df) == 8 * 3


@pytest.mark.slow
def test_interrupted_group_resumes_from_finished_chunks(tmp_path, monkeypatch):
  cfg = _cfg(seed=[0, 1, 2, 3, 4], sweep={"memory_budget_gb": 2.0})
  monkeypatch.setattr(program, "bytes_per_config", lambda static: 2**30)  # 2 per chunk
  wd = str(tmp_path / "wd")
  real_get = sweep_lib.jax.device_get
  calls = []

  def crash_on_second(x):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return real_get(x)

  monkeypatch.setattr(sweep_lib.jax, "device_get", crash_on_second)
  with pytest.raises(KeyboardInterrupt):
    sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  assert len([f for f in os.listdir(os.path.join(wd, "groups")) if ".chunk" in f]) == 1
  calls.clear()
  monkeypatch.setattr(sweep_lib.jax, "device_get", lambda x: calls.append(1) or real_get(x))
  df = sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  assert len(calls) == 2  # chunks 2 and 3 only
  assert not [f for f in os.listdir(os.path.join(wd, "groups")) if ".chunk" in f]
  monkeypatch.setattr(sweep_lib.jax, "device_get", real_get)
  pd.testing.assert_frame_equal(df, featcon.sweep(cfg))


@pytest.mark.slow
def test_padded_fixed_set_minibatches_and_unequal_sizes_equal_simulate():
  """Minibatches of the fixed set padded to the largest batch, with k_core != k_bg and d a
  multiple of neither: every configuration equals its own simulate run."""
  cfg = _cfg(data={"d": 23, "k_core": 3, "k_bg": 7}, model={"width": [8, 16]},
             train={"batch_size": [5, 16, 64], "steps": 40})
  df = featcon.sweep(cfg)
  groups = plan_lib.make_groups([featcon.resolve_config(c) for _, c in plan_lib.expand(cfg)])
  assert len(groups) == 2 and any(g.static.batch_padded for g in groups)  # full batch apart
  for swept, single in plan_lib.expand(cfg):
    r = featcon.simulate(single)
    sel = np.ones(len(df), bool)
    for k, v in swept.items():
      sel &= (df[k.split(".")[-1]] == v).values
    sub = df[sel].sort_values("step")
    assert len(sub) == 3
    for key in ("id_risk", "ood_risk", "core_corr", "bg_corr", "bg_signed", "core_align",
                "train_loss"):
      np.testing.assert_allclose(sub[key].values, r.metrics[key], rtol=2e-5, atol=1e-6,
                                 err_msg=f"{swept} {key}")


def _select(df, swept):
  sel = np.ones(len(df), bool)
  for k, v in swept.items():
    sel &= (df[k.split(".")[-1]] == v).values
  return df[sel].sort_values("step")


@pytest.mark.slow
@pytest.mark.parametrize("path", ["feature", "input"])
def test_shift_sweep_trains_once_and_equals_one_training_per_shift(path):
  """Configurations that differ only in data.shift share one training; every configuration's
  rows equal those of its own training (the per-shift path) and of simulate. A zipped axis
  gives trainings with unequal numbers of shifts (the shorter shift vector is padded)."""
  cfg = _cfg(seed=[0, 1], model={"activation": ["relu", "identity"]},
             data={"shift": [0.0, 0.4, 1.0, 0.7]}, train={"lr": [0.05, 0.05, 0.05, 0.1],
                                                           "path": path},
             sweep={"zip": [("data.shift", "train.lr")]})
  ex = plan_lib.expand(cfg)
  resolved = [featcon.resolve_config(c) for _, c in ex]
  shared = plan_lib.make_groups(resolved)
  assert sorted((g.n_trainings, len(g.indices), g.static.n_shifts) for g in shared) == [
      (4, 8, 3), (4, 8, 3)]  # per activation: 2 seeds x 2 learning rates; lr 0.1 pads
  per_shift = plan_lib.make_groups(resolved, share_training=False)
  assert [g.static.n_shifts for g in per_shift] == [0, 0]
  results = {}
  for name, groups in (("shared", shared), ("per_shift", per_shift)):
    m = [None] * len(ex)
    div = np.full(len(ex), -1)
    for g in groups:
      metrics, d, timing = runner.run_group(g, progress=False)
      assert timing["trainings"] == g.n_trainings and timing["configs"] == len(ex) // 2
      for j, i in enumerate(g.indices):
        m[i] = {k: v[j] for k, v in metrics.items()}
        div[i] = d[j]
    results[name] = m
  for i, (swept, _) in enumerate(ex):
    for key, ref in results["per_shift"][i].items():
      np.testing.assert_allclose(results["shared"][i][key], ref, rtol=1e-6, atol=1e-7,
                                 err_msg=f"{swept} {key}")
  # the OOD metrics move with the shift (a slicing bug that mixes shifts up breaks this)
  ood = {(s["seed"], s["model.activation"], s["data.shift"]): results["shared"][i]["ood_risk"][-1]
         for i, (s, _) in enumerate(ex)}
  assert ood[(0, "relu", 1.0)] > ood[(0, "relu", 0.4)] > ood[(0, "relu", 0.0)]
  if path == "feature":  # the engine end to end: one tidy row per configuration and log step
    df = featcon.sweep(cfg)
    assert len(df) == len(ex) * 4
    for i, (swept, _) in enumerate(ex):
      sub = _select(df, swept)
      for key in ("id_risk", "ood_risk", "ood_error", "train_ood_risk", "train_loss"):
        np.testing.assert_allclose(sub[key].values, results["per_shift"][i][key], rtol=1e-6,
                                   atol=1e-7, err_msg=f"{swept} {key}")
