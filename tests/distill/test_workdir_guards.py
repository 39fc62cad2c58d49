"""Workdir guards of the deep-network stages (docs/reliability.md): each stage records the
fingerprint of what determines its results and refuses, naming every differing field, to reuse
a workdir made under another config; corrupt caches are recomputed or named with the fix."""
import json
import os

import numpy as np
import pytest

from featcon import io

for _m in ("sklearn", "skimage", "PIL"):
  pytest.importorskip(_m)
from configs.distill import digits  # pylint: disable=g-import-not-at-top
from featcon import distill  # pylint: disable=g-import-not-at-top
from featcon.data import refs  # pylint: disable=g-import-not-at-top
from featcon.probe import features, stages  # pylint: disable=g-import-not-at-top


def _config(**distill_over):
  c = digits.get_config("tiny-rn,smoke")
  c.teacher.source = "random"
  c.distill.update(distill_over)
  return c


def _record(wd, stage):
  with open(os.path.join(wd, f"{stage}_config.json")) as f:
    return json.load(f)


def _truncate(path):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])


def test_distill_rerun_with_other_settings_is_refused_naming_fields(tmp_path):
  wd = str(tmp_path)
  c = _config()
  distill.start_stage(c, wd, "distill")
  distill.distill(c, wd)
  before = _record(wd, "distill")
  changed = _config(lr=0.5)
  changed.seed = 7
  with pytest.raises(io.ConfigMismatchError) as e:
    distill.start_stage(changed, wd, "distill")
  assert "distill.lr: 0.003 (recorded) -> 0.5 (now)" in str(e.value)
  assert "seed: 0 (recorded) -> 7 (now)" in str(e.value)
  assert _record(wd, "distill") == before  # the record is not overwritten
  with pytest.raises(io.ConfigMismatchError, match=r"distill\.steps: 6 .*-> 12"):
    distill.start_stage(_config(steps=12), wd, "distill")
  # Options that do not change results may differ.
  same = _config(log_every=3, checkpoint_every=3, stop_after=4)
  same.num_devices = 1
  same.data.workers = 1
  distill.start_stage(same, wd, "distill")
  assert _record(wd, "distill")["fingerprint"] == before["fingerprint"]
  # An explicit request continues with the new settings; the record keeps the old ones.
  info = distill.start_stage(changed, wd, "distill", allow_changes=True)
  assert info["config"]["distill"]["lr"] == 0.5
  assert info["history"][0]["config"]["distill"]["lr"] == 0.003
  assert {d["field"] for d in info["changed"]} == {"distill.lr", "seed"}
  assert _record(wd, "distill")["history"] == info["history"]


def test_other_student_architecture_refused_before_writing(tmp_path):
  wd = str(tmp_path)
  distill.start_stage(_config(), wd, "distill")
  before = _record(wd, "distill")
  other = _config()
  other.model.student = "tiny-vit"
  with pytest.raises(io.ConfigMismatchError, match="another architecture"):
    distill.start_stage(other, wd, "distill", allow_changes=True)
  assert _record(wd, "distill") == before


def test_probe_and_evaluate_check_the_earlier_stage(tmp_path):
  wd = str(tmp_path)
  c = _config(lr=1e-2)
  distill.start_stage(c, wd, "distill")
  distill.distill(c, wd)
  # The probe stage run without the distillation's overrides: refused, naming the field.
  with pytest.raises(io.ConfigMismatchError, match=r"distill\.lr: 0\.01 \(recorded\) -> 0\.003"):
    distill.start_stage(_config(), wd, "linear_probe")
  assert not os.path.exists(os.path.join(wd, "linear_probe_config.json"))
  # Probe settings are not the distillation's business.
  c.probe.lr = 0.5
  distill.start_stage(c, wd, "linear_probe")
  # Cached probes are reused only under the same probe settings.
  os.makedirs(os.path.join(wd, "probes"))
  open(os.path.join(wd, "probes", "student_adamw.json"), "w").close()
  c2 = _config(lr=1e-2)
  c2.probe.lr = 0.1
  with pytest.raises(io.ConfigMismatchError, match=r"probe\.lr: 0\.5 \(recorded\) -> 0\.1"):
    distill.start_stage(c2, wd, "linear_probe")
  assert os.listdir(os.path.join(wd, "probes"))
  distill.start_stage(c2, wd, "linear_probe", allow_changes=True)
  assert not os.listdir(os.path.join(wd, "probes"))  # stale probes dropped: retrained
  # The evaluation checks the probe stage's record; eval settings may differ.
  c2.eval.baseline = "none"
  for name in ("teacher_adamw", "teacher_ridge", "student_adamw", "student_ridge"):
    for ext in (".npz", ".json"):
      open(os.path.join(wd, "probes", name + ext), "w").close()
  info = distill.start_stage(c2, wd, "evaluate")
  assert info["config"]["probe"]["lr"] == 0.1
  c3 = _config()
  c3.probe.lr = 0.1
  with pytest.raises(io.ConfigMismatchError, match=r"distill\.lr"):
    distill.start_stage(c3, wd, "evaluate")


def test_names_validated_before_any_work(tmp_path):
  c = _config()
  c.teacher.source = "pretrain"
  c.model.student = "no-such-net"
  with pytest.raises(ValueError, match=r"config\.model\.student='no-such-net'.*allowed"):
    distill.distill(c, str(tmp_path))
  assert not os.listdir(tmp_path)  # the teacher was not pre-trained
  with pytest.raises(ValueError, match=r"config\.model\.student"):
    distill.start_stage(c, str(tmp_path), "distill")
  c = _config()
  c.data.probe_train = "no_such_set:train"
  with pytest.raises(ValueError, match=r"config\.data\.probe_train"):
    distill.start_stage(c, str(tmp_path), "linear_probe")
  c = _config()
  c.probe.models = "teacher,studnet"
  with pytest.raises(ValueError, match=r"config\.probe\.models"):
    distill.start_stage(c, str(tmp_path), "linear_probe")
  assert not os.listdir(tmp_path)


def test_corrupt_record_named_with_fix(tmp_path):
  wd = str(tmp_path)
  distill.start_stage(_config(), wd, "distill")
  _truncate(os.path.join(wd, "distill_config.json"))
  with pytest.raises(io.CorruptFileError, match=r"distill_config\.json.*corrupt.*delete it"):
    distill.start_stage(_config(), wd, "distill")


def test_corrupt_feature_cache_recomputed_and_probe_named(tmp_path):
  c = _config()
  module, variables = distill.model_variables(c, str(tmp_path), "teacher")
  ds = refs.open_dataset(c, c.data.probe_val)
  cache = str(tmp_path / "features")
  f0, y0 = features.cached_features(module, variables, ds, c, cache)
  (name,) = os.listdir(cache)
  _truncate(os.path.join(cache, name))
  with pytest.warns(RuntimeWarning, match="recomputed"):
    f1, y1 = features.cached_features(module, variables, ds, c, cache)
  np.testing.assert_array_equal(f0, f1)
  np.testing.assert_array_equal(y0, y1)
  io.load_npz(os.path.join(cache, name))  # rewritten whole
  path = str(tmp_path / "p.npz")
  io.atomic_write(path, lambda f: np.savez(f, kernel=np.ones((300, 10)), bias=np.ones(10),
                                           kind="ridge"), binary=True)
  _truncate(path)
  stamp = io.stamp({"probe": 1})
  with pytest.raises(io.CorruptFileError, match=r"p\.npz.*experiments\.linear_probe"):
    stages._load_probe(path, stamp, 300, 10)
  io.write_json(str(tmp_path / "p.json"), {"lambda": 1.0})
  assert stages._cached_probe(str(tmp_path / "p"), stamp, 300, 10) is None  # retrained
  assert not os.path.exists(path)
