"""Provenance of the sweep's artifacts (docs/reliability.md, "Every artifact carries what made
it"): a finished group or chunk is reused only under its own configurations' stamp, whatever the
workdir's record says; malformed record and group files are named or recomputed; the expansion
limit and the --axis / --config conflict are refused before any work."""
import json
import os
import re
import shutil
import time

import numpy as np
import pytest

from featcon import io
from featcon.errors import ConfigError, FeatconError
from featcon.theory import plan as plan_lib
from featcon.theory import runner
from featcon.theory import sweeps as sweep_lib
from tests.helpers import merge

BASE = {"data": {"d": 16, "k_core": 4, "k_bg": 4, "n_train": 32, "n_eval": 64},
        "model": {"width": 8}, "train": {"steps": 20, "log_every": 10, "lr": 5e-2},
        "sweep": {"progress": False}}


def _cfg(**over):
  return merge(BASE, over)


def _csv(wd):
  with open(os.path.join(wd, "results.csv"), "rb") as f:
    return f.read()


def _group_files(wd, ext):
  gdir = os.path.join(wd, "groups")
  return sorted(os.path.join(gdir, f) for f in os.listdir(gdir) if f.endswith(ext)
                and ".chunk" not in f)


def test_group_stamp_names_the_fields_that_determine_it():
  a = plan_lib.make_plan(_cfg(seed=[0, 1]))
  (g,) = plan_lib.make_groups(a.configs)
  assert g.stamp["fields"]["seed"] == [0, 1] and g.stamp["fields"]["train.lr"] == 5e-2
  assert g.stamp["fields"]["configs"] == 2
  (h,) = plan_lib.make_groups(plan_lib.make_plan(_cfg(seed=[0, 1], train={"lr": 0.1})).configs)
  assert h.key == g.key  # the same program ...
  assert io.stamp_diff(g.stamp, h.stamp) == [("train.lr", 5e-2, 0.1)]  # ... other results
  (r,) = plan_lib.make_groups(plan_lib.make_plan(_cfg(seed=[1, 0])).configs)
  assert io.stamp_diff(g.stamp, r.stamp) == [("seed", [0, 1], [1, 0])]  # the order is stamped


def test_deleted_record_cannot_pass_old_results_for_new(tmp_path):
  """Delete config.json of a finished sweep and rerun with another learning rate: every group
  is recomputed (a warning names the file and the field), and results.csv is byte-identical to
  an undisturbed run with the new rate."""
  old, wd, ref = _cfg(seed=[0, 1]), str(tmp_path / "w"), str(tmp_path / "ref")
  new = _cfg(seed=[0, 1], train={"lr": 0.1})
  sweep_lib.run(old, workdir=wd, log=lambda s: None)
  sweep_lib.run(new, workdir=ref, log=lambda s: None)
  assert _csv(wd) != _csv(ref)
  os.remove(os.path.join(wd, "config.json"))
  lines = []
  sweep_lib.run(new, workdir=wd, log=lines.append)
  assert any("cannot be reused" in l and "train.lr: 0.05 (recorded) -> 0.1 (now)" in l for l in lines), lines
  assert not any("done earlier" in l for l in lines)
  assert _csv(wd) == _csv(ref)
  # An undisturbed rerun still resumes every group.
  lines.clear()
  sweep_lib.run(new, workdir=wd, log=lines.append)
  assert any("done earlier" in l for l in lines) and _csv(wd) == _csv(ref)


def test_malformed_group_and_record_files(tmp_path):
  cfg, wd = _cfg(seed=[0, 1]), str(tmp_path / "w")
  sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  ref = _csv(wd)
  (group,) = plan_lib.make_groups(plan_lib.make_plan(cfg).configs)
  (gjson,) = _group_files(wd, ".json")
  (gnpz,) = _group_files(wd, ".npz")
  path = gjson[:-len(".json")]
  saved = {f: open(f, "rb").read() for f in (gjson, gnpz)}
  z = io.load_npz(gnpz)

  def restore():
    for f, data in saved.items():
      with open(f, "wb") as fh:
        fh.write(data)

  cases = [(gjson, {"timing": None}, "no 'timing' object"), (gjson, [1, 2], "no 'timing'"),
           (gjson, {"timing": {}, "stamp": 5}, r"<stamp>: 'malformed'"),
           (gjson, {"timing": {}}, r"<stamp>: '<absent>'"),
           # another configuration's arrays in the group's .npz
           (gnpz, {k: v if v.ndim == 0 else v[:1] for k, v in z.items()}, r"'__diverged' has shape \(1,\)"),
           (gnpz, {k: v for k, v in z.items() if k != io.STAMP_KEY}, r"\.npz.*<stamp>")]
  for f, content, reason in cases:
    if f.endswith(".json"):
      io.write_json(f, content)
    else:
      np.savez(f, **content)
    lines = []
    assert runner._load_group(path, group, lines.append) is None, reason
    assert len(lines) == 1 and "cannot be reused" in lines[0] and path in lines[0], lines
    assert re.search(reason, lines[0]), (reason, lines[0])
    assert not os.path.exists(gjson) and not os.path.exists(gnpz)  # removed: recomputed
    restore()
  assert runner._load_group(path, group, lambda s: None) is not None
  # One malformed group file through a whole rerun: recomputed, the same results.
  io.write_json(gjson, {"timing": None})
  sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  assert _csv(wd) == ref
  record = os.path.join(wd, "config.json")
  for bad in ({"config": 5}, {"config": [1]}, [], {"versions": {}}):
    io.write_json(record, bad)
    with pytest.raises(io.CorruptFileError, match=r"config\.json.*no 'config' object.*delete"):
      sweep_lib.run(cfg, workdir=wd, log=lambda s: None)


def test_chunk_of_other_configurations_is_recomputed(tmp_path):
  a = plan_lib.make_groups(plan_lib.make_plan(_cfg(seed=[0, 1, 2, 3])).configs)[0]
  b = plan_lib.make_groups(plan_lib.make_plan(
      _cfg(seed=[0, 1, 2, 3], train={"lr": 0.1})).configs)[0]
  prefix = str(tmp_path / "g")
  limits = runner.Limits(max_chunk=2)
  runner.run_group(a, limits, progress=False, chunk_prefix=prefix)
  ref, _, _ = runner.run_group(b, limits, progress=False)
  with pytest.warns(RuntimeWarning, match=r"chunk2-0\.npz.*other settings.*train\.lr"):
    out, _, _ = runner.run_group(b, limits, progress=False, chunk_prefix=prefix)
  np.testing.assert_array_equal(ref["ood_risk"], out["ood_risk"])


def test_expansion_limit_before_expanding():
  t = time.perf_counter()
  seeds = ",".join(map(str, range(10**6)))
  with pytest.raises(ConfigError, match=r"expands to 2000000 configurations \(model\.activation: "
                     r"2, seed: 1000000\), more than sweep\.max_configs=20000"):
    plan_lib.make_plan(_cfg(model={"activation": ["relu", "gelu"]}), axes=[f"seed={seeds}"])
  assert time.perf_counter() - t < 30  # parsing the values only; nothing is expanded
  with pytest.raises(ConfigError, match=r"expands to 6 configurations.*max_configs=5"):
    plan_lib.make_plan(_cfg(seed=[0, 1, 2], train={"lr": [0.1, 0.2]},
                            sweep={"max_configs": 5}))
  zipped = plan_lib.make_plan(_cfg(seed=[0, 1, 2], train={"lr": [0.1, 0.2, 0.3]},
                                   sweep={"max_configs": 3, "zip": (("seed", "train.lr"),)}))
  assert len(zipped.points) == 3  # a zip group counts once
  with pytest.raises(ConfigError, match="sweep.max_configs"):
    plan_lib.make_plan(_cfg(sweep={"max_configs": 0}))


@pytest.mark.parametrize("order", ["axis_first", "config_first"])
def test_axis_and_config_override_of_one_field_refused(order):
  from tests.theory.test_plan import SMOKE, _plan  # pylint: disable=g-import-not-at-top
  args = ["--axis=seed=0,1", "--config.seed=3"]
  if order == "config_first":
    args.reverse()
  with pytest.raises(ValueError, match=r"'seed' is given both as --config\.seed="):
    _plan([f"--config={SMOKE}"] + args)


# ---- fault injection ----------------------------------------------------------------------------

def _damage(path, how, rng):
  with open(path, "rb") as f:
    data = f.read()
  if how == "delete":
    os.remove(path)
  elif how == "truncate":
    with open(path, "wb") as f:
      f.write(data[:int(rng.integers(0, max(1, len(data))))])
  elif how == "flip":
    b = bytearray(data)
    for i in rng.integers(0, len(b), size=8):
      b[i] ^= 0xFF
    with open(path, "wb") as f:
      f.write(bytes(b))
  elif how == "empty_json":
    with open(path, "w") as f:
      json.dump({}, f)


@pytest.mark.slow
def test_sweep_fault_injection(tmp_path):
  """A sweep of three compiled groups, "killed" after a random number of finished groups (the
  later groups' files and the outputs removed, a chunk of the next one left), then one random
  file damaged (deleted, truncated, bytes flipped, replaced by an empty JSON object), then
  rerun: the final results.csv equals the undisturbed run's, or the rerun stops with a featcon
  error naming a file of the workdir."""
  cfg = _cfg(seed=[0, 1], data={"d": [12, 16, 20]})
  clean = str(tmp_path / "clean")
  sweep_lib.run(cfg, workdir=clean, log=lambda s: None)
  ref = _csv(clean)
  rng = np.random.default_rng(0)
  outcomes = {"equal": 0, "named": 0}
  for trial in range(6):
    wd = str(tmp_path / f"t{trial}")
    shutil.copytree(clean, wd)
    groups = _group_files(wd, ".json")
    kill_after = int(rng.integers(0, len(groups) + 1))
    for g in groups[kill_after:]:
      os.remove(g)
      os.remove(g[:-5] + ".npz")
    if kill_after < len(groups) or rng.random() < 0.5:
      for f in ("results.csv", "summary.md", "trajectories.npz"):
        if os.path.exists(os.path.join(wd, f)):
          os.remove(os.path.join(wd, f))
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(wd) for f in fs
             if f.endswith((".json", ".npz", ".csv"))]
    victim = files[int(rng.integers(0, len(files)))]
    _damage(victim, ["delete", "truncate", "flip", "empty_json"][int(rng.integers(0, 4))], rng)
    try:
      sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
    except FeatconError as e:
      assert wd in str(e) and "\n" not in str(e).split(";")[0], e
      outcomes["named"] += 1
      continue
    assert _csv(wd) == ref, (trial, victim)
    outcomes["equal"] += 1
  print(f"fault injection: {outcomes}")  # the counts docs/reliability.md reports
  assert sum(outcomes.values()) == 6


def _finished_files(wd):
  gdir = os.path.join(wd, "groups")
  names = os.listdir(gdir) if os.path.isdir(gdir) else []
  return {"chunks": sum(".chunk" in f and f.endswith(".npz") for f in names),
          "groups": sum(".chunk" not in f and f.endswith(".json") for f in names),
          "temporary": sum(f.startswith(".tmp-") for f in names)}


@pytest.mark.slow
def test_sweep_killed_at_random_points_resumes_to_the_same_results(tmp_path):
  """``experiments.sweep`` (2 compiled groups of 8 configurations, chunks of 2) killed with
  SIGKILL three times, each as soon as a random number of chunk or group files has been
  written (a random point of the run), then rerun to the end: the results.csv equals an
  undisturbed run's byte for byte."""
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  cmd = [sys.executable, "-m", "experiments.sweep", "--config=configs/theory.py:smoke",
         "--config.train.steps=10000", "--config.sweep.max_chunk=2", "--cpu_devices=1",
         "--axis=seed=0,1,2,3"]
  env = dict(os.environ, PYTHONPATH=root)
  ref = str(tmp_path / "ref")
  subprocess.run(cmd + [f"--workdir={ref}"], cwd=root, env=env, check=True, timeout=600,
                 capture_output=True)
  wd = str(tmp_path / "killed")
  rng = np.random.default_rng(1)
  left = []
  for _ in range(3):
    before = _finished_files(wd)
    target = before["chunks"] + 2 * before["groups"] + int(rng.integers(1, 4))
    p = subprocess.Popen(cmd + [f"--workdir={wd}"], cwd=root, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while p.poll() is None:
      now = _finished_files(wd)
      if now["chunks"] + 2 * now["groups"] >= target:
        p.send_signal(signal.SIGKILL)
        break
      time.sleep(0.01)
    p.wait()
    left.append(dict(_finished_files(wd), rc=p.returncode))
  print(f"files left by each kill: {left}")  # the counts docs/reliability.md reports
  subprocess.run(cmd + [f"--workdir={wd}"], cwd=root, env=env, check=True, timeout=600,
                 capture_output=True)
  assert _csv(wd) == _csv(ref)
