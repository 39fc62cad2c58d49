"""Guards of docs/reliability.md ("Workdirs, caches and input guards"): outputs with ordinary
permissions, corrupt files named with their fix, sweep workdirs that accept result-invariant
option changes, validation of sweep.max_chunk and train.steps, the memory guard.

The deep-network stages' workdir guards are tested in tests/distill/test_workdir_guards.py.
"""
import json
import os
import stat

import numpy as np
import pytest

import featcon
from featcon import io
from featcon.theory import plan as plan_lib
from featcon.theory import runner
from featcon.theory import sweeps as sweep_lib
from tests.helpers import merge

BASE = {"data": {"d": 16, "k_core": 4, "k_bg": 4, "n_train": 32, "n_eval": 64},
        "model": {"width": 8}, "train": {"steps": 20, "log_every": 10, "lr": 5e-2}}


def _cfg(**over):
  return merge(BASE, over)


def _quiet(_):
  pass


def _truncate(path, keep=0.5):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:int(len(data) * keep)])


# ---- io ---------------------------------------------------------------------------------------

def test_atomic_write_gives_ordinary_permissions(tmp_path):
  old = os.umask(0o022)
  try:
    io.write_json(str(tmp_path / "a.json"), {"x": 1})
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644
    os.umask(0o027)
    io.atomic_write(str(tmp_path / "b.bin"), lambda f: f.write(b"1"), binary=True)
    assert stat.S_IMODE(os.stat(tmp_path / "b.bin").st_mode) == 0o640
  finally:
    os.umask(old)


def test_read_json_and_load_npz_name_the_file_and_the_fix(tmp_path):
  path = str(tmp_path / "c.json")
  io.write_json(path, {"config": {"a": 1}})
  _truncate(path)
  with pytest.raises(io.CorruptFileError, match=r"c\.json.*delete it"):
    io.read_json(path)
  npz = str(tmp_path / "a.npz")
  io.atomic_write(npz, lambda f: np.savez(f, x=np.arange(1000.0)), binary=True)
  np.testing.assert_array_equal(io.load_npz(npz)["x"], np.arange(1000.0))
  with pytest.raises(io.CorruptFileError, match="lacks the arrays"):
    io.load_npz(npz, keys=("y",))
  _truncate(npz)
  with pytest.raises(io.CorruptFileError, match=r"a\.npz.*corrupt or truncated"):
    io.load_npz(npz)
  with pytest.warns(RuntimeWarning, match="recomputed"):
    assert io.load_cache_npz(npz) is None
  assert not os.path.exists(npz)


def test_config_diff_and_fingerprint_ignore():
  old = {"seed": 0, "distill": {"lr": 1e-3, "log_every": 10}, "probe": {"lr": 1.0}}
  new = {"seed": 7, "distill": {"lr": 0.5, "log_every": 20}, "probe": {"lr": 2.0}}
  assert io.config_diff(old, new, ignore=("distill.log_every", "probe")) == [
      ("distill.lr", 1e-3, 0.5), ("seed", 0, 7)]
  assert io.fingerprint(old, ignore=("seed", "distill", "probe.*")) == io.fingerprint(
      new, ignore=("seed", "distill", "probe"))
  assert io.fingerprint(old) != io.fingerprint(new)
  assert io.config_diff({"a": 1}, {"a": 1, "b": 2}) == [("b", "<absent>", 2)]


# ---- sweep workdirs ---------------------------------------------------------------------------

def test_sweep_resumes_with_other_memory_budget_and_names_differing_fields(tmp_path):
  wd = str(tmp_path / "w")
  cfg = _cfg(seed=[0, 1], sweep={"progress": False, "memory_budget_gb": 4.0})
  df = sweep_lib.run(cfg, workdir=wd, log=_quiet)
  lines = []
  again = sweep_lib.run(_cfg(seed=[0, 1], sweep={"progress": True, "memory_budget_gb": 1.0,
                                                 "max_chunk": 7}),
                        workdir=wd, log=lines.append, progress=False)
  assert any("done earlier" in l for l in lines)
  np.testing.assert_array_equal(df["ood_risk"].to_numpy(), again["ood_risk"].to_numpy())
  with pytest.raises(ValueError, match=r"train\.lr: 0\.05 \(recorded\) -> 0\.1 \(now\)"):
    sweep_lib.run(_cfg(seed=[0, 1], train={"lr": 0.1}), workdir=wd, log=_quiet)


def test_sweep_corrupt_files(tmp_path):
  wd = str(tmp_path / "w")
  cfg = _cfg(seed=[0, 1], sweep={"progress": False})
  df = sweep_lib.run(cfg, workdir=wd, log=_quiet)
  gdir = os.path.join(wd, "groups")
  (key,) = {f.split(".")[0] for f in os.listdir(gdir)}
  # A truncated finished group: recomputed, the same numbers.
  _truncate(os.path.join(gdir, key + ".npz"))
  lines = []
  again = sweep_lib.run(cfg, workdir=wd, log=lines.append)
  assert any("recomputing the group" in l for l in lines)
  np.testing.assert_array_equal(df["ood_risk"].to_numpy(), again["ood_risk"].to_numpy())
  # A truncated config.json: an error naming the file and the fix.
  _truncate(os.path.join(wd, "config.json"))
  with pytest.raises(io.CorruptFileError, match=r"config\.json.*delete it"):
    sweep_lib.run(cfg, workdir=wd, log=_quiet)


def test_sweep_corrupt_chunk_is_recomputed(tmp_path):
  cfg = _cfg(seed=[0, 1, 2, 3])
  groups = plan_lib.make_groups([featcon.resolve_config(c) for _, c in plan_lib.expand(cfg)])
  prefix = str(tmp_path / "g")
  ref, _, _ = runner.run_group(groups[0], runner.Limits(max_chunk=2), progress=False,
                               chunk_prefix=prefix)
  chunk = prefix + ".chunk2-1.npz"
  assert os.path.exists(chunk)
  _truncate(chunk)
  with pytest.warns(RuntimeWarning, match=r"chunk2-1\.npz.*recomputed"):
    out, _, _ = runner.run_group(groups[0], runner.Limits(max_chunk=2), progress=False,
                                 chunk_prefix=prefix)
  np.testing.assert_array_equal(ref["ood_risk"], out["ood_risk"])
  io.load_npz(chunk)  # rewritten whole


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_sweep_max_chunk_validated_before_writing(tmp_path, bad):
  wd = tmp_path / "w"
  with pytest.raises(ValueError, match=r"sweep\.max_chunk.*allowed: an integer"):
    sweep_lib.run(_cfg(seed=[0, 1], sweep={"max_chunk": bad}), workdir=str(wd), log=_quiet)
  assert not wd.exists()


# ---- theory config and memory -----------------------------------------------------------------

def test_steps_beyond_int32_refused():
  with pytest.raises(ValueError, match=r"train\.steps.*2147483647"):
    featcon.resolve_config({"train": {"steps": 2**31, "log_every": 2**30}})
  featcon.resolve_config({"train": {"steps": 2**31 - 1, "log_every": 1}})


def test_memory_guard_before_compiling(tmp_path):
  big = {"data": {"n_eval": 10**9}}
  with pytest.raises(ValueError, match=r"GiB.*sweep\.memory_budget_gb=4\.0.*data\.n_eval"):
    sweep_lib.run(_cfg(seed=[0, 1], **big), workdir=str(tmp_path / "w"), log=_quiet)
  assert not (tmp_path / "w").exists()
  with pytest.raises(ValueError, match=r"GiB.*memory_budget_gb.*data\.n_eval"):
    featcon.simulate(_cfg(**big))
  # The estimate scales with n_eval; a small budget refuses a small run too.
  with pytest.raises(ValueError, match="memory_budget_gb"):
    featcon.simulate(_cfg(), memory_budget_gb=1e-6)
  assert featcon.simulate(_cfg()).final["ood_risk"] >= 0
