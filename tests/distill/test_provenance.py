"""Provenance, checked caches, guards before work and clean failure in the deep-network stages
(docs/reliability.md): checkpoints carry the stamp of the config that made them and are refused
under another one whatever the record files say; damaged checkpoints and cached features are
named or recomputed; every numeric and choice field and every earlier stage's output is checked
before any work; an error or Ctrl-C stops the background threads and keeps the last
checkpoint."""
import math
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon import io
from featcon import training as train_lib
from featcon.checkpoints import CheckpointError
from featcon.errors import ConfigError, FeatconError, WorkdirError

for _m in ("sklearn", "skimage", "PIL"):
  pytest.importorskip(_m)
from configs.distill import digits  # pylint: disable=g-import-not-at-top
from featcon import distill  # pylint: disable=g-import-not-at-top
from featcon.probe import features, stages  # pylint: disable=g-import-not-at-top
from tests.probe.test_features import Enc, _setup  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(**distill_over):
  c = digits.get_config("tiny-rn,smoke")
  c.teacher.source = "random"
  c.distill.update(distill_over)
  return c


def _toy_fit(tmp_path, total=6, stamp=None, batches=None, allow_changes=False, **kw):
  """``fit`` of a one-parameter state (w <- w - 0.1, loss w^2) with checkpoints every 2 steps."""
  state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.ones(3)}}
  def step(s, batch):
    w = s["params"]["w"] - 0.1 * batch
    return dict(s, step=s["step"] + 1, params={"w": w}), {"loss": jnp.sum(w * w)}
  batches = batches or (lambda start: iter([jnp.ones(3)] * (total - start)))
  return train_lib.fit(state, step, batches, total_steps=total, ckpt_dir=str(tmp_path / "c"),
                       metrics_path=str(tmp_path / "m.jsonl"), mesh=train_lib.make_mesh(1),
                       checkpoint_every=2, log_every=2, name="t", progress=False, stamp=stamp,
                       allow_changes=allow_changes, **kw)


# ---- checkpoints ---------------------------------------------------------------------------------

def test_checkpoints_carry_their_stamp_and_refuse_another(tmp_path):
  s1, s2 = io.stamp({"distill": {"lr": 0.003}}), io.stamp({"distill": {"lr": 0.01}})
  _toy_fit(tmp_path, stamp=s1)
  ckpt = str(tmp_path / "c")
  assert train_lib.checkpoint_stamp(ckpt) == (6, s1)
  assert train_lib.check_checkpoint(ckpt, s1) == 6
  with pytest.raises(io.ConfigMismatchError) as e:
    train_lib.check_checkpoint(ckpt, s2)
  msg = str(e.value)
  assert os.path.join(ckpt, "6") in msg and "step 6" in msg
  assert "distill.lr: 0.003 (recorded) -> 0.01 (now)" in msg
  with pytest.raises(io.ConfigMismatchError, match="distill.lr"):  # resuming is refused too
    _toy_fit(tmp_path, total=8, stamp=s2)
  out = _toy_fit(tmp_path, total=8, stamp=s2, allow_changes=True)
  assert int(out["step"]) == 8 and train_lib.checkpoint_stamp(ckpt) == (8, s2)
  # A checkpoint saved without a stamp is not taken for one made under the current config.
  _toy_fit(tmp_path / "old")
  with pytest.raises(CheckpointError, match=r"step 6 carries no provenance stamp.*delete"):
    train_lib.check_checkpoint(str(tmp_path / "old" / "c"), s1)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_checkpoint_is_one_line_naming_folder_and_step(tmp_path, damage):
  _toy_fit(tmp_path)
  ckpt = str(tmp_path / "c")
  step_dir = os.path.join(ckpt, "6")
  files = sorted((os.path.getsize(os.path.join(dp, f)), os.path.join(dp, f))
                 for dp, _, fs in os.walk(os.path.join(step_dir, "default")) for f in fs)
  victim = files[-1][1]  # the largest file: the arrays' data
  if damage == "truncate":
    with open(victim, "r+b") as f:
      f.truncate(os.path.getsize(victim) // 2)
  else:
    os.remove(victim)
  with pytest.raises(CheckpointError) as e:
    train_lib.restore_latest(ckpt)
  msg = str(e.value)
  assert "\n" not in msg and f"checkpoint {ckpt!r} step 6 cannot be restored" in msg
  assert f"delete {step_dir!r}" in msg and e.value.__cause__ is not None
  shutil.rmtree(step_dir)  # what the message says: the previous checkpoint is used
  _, step = train_lib.restore_latest(ckpt)
  assert step == 4


def test_ctrl_c_keeps_the_last_finished_checkpoint(tmp_path):
  full = _toy_fit(tmp_path / "full")

  def interrupted(start):
    for i in range(start, 6):
      if i == 5:
        raise KeyboardInterrupt
      yield jnp.ones(3)
  with pytest.raises(KeyboardInterrupt):
    _toy_fit(tmp_path, batches=interrupted)
  assert train_lib.checkpoint_stamp(str(tmp_path / "c"))[0] == 4
  out = _toy_fit(tmp_path)  # resumes from step 4
  np.testing.assert_array_equal(np.asarray(out["params"]["w"]), np.asarray(full["params"]["w"]))


_FAILING_FIT = r"""
import jax.numpy as jnp, numpy as np
from featcon import training as train_lib
from featcon.data import Loader
from featcon.data.sources import ArraySource
src = ArraySource(np.zeros((64, 8, 8, 3), np.uint8), np.zeros(64, np.int64))
loader = Loader(src, 4, 8, workers=2)
mesh = train_lib.make_mesh(1)
state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.ones(3)}}
def step(s, batch):
  return dict(s, step=s["step"] + 1), {"loss": jnp.sum(batch["image"]) * 0.0}
train_lib.fit(state, step, train_lib.batch_stream(loader, mesh, 1000), total_steps=1000,
              ckpt_dir=CKPT, metrics_path=CKPT + "/m.jsonl", mesh=mesh, log_every=0,
              name="t", progress=False)
"""


def test_error_during_training_exits_cleanly(tmp_path):
  """An error inside fit with the batch-prefetch thread running (here ``log_every=0``, which
  the stages refuse before work) ends the process with the error and exit code 1, not a fatal
  abort of a thread still putting batches on the device."""
  code = _FAILING_FIT.replace("CKPT", repr(str(tmp_path / "c")))
  p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                     timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
  assert p.returncode == 1, p.stderr[-2000:]
  assert "ZeroDivisionError" in p.stderr
  assert "Fatal Python error" not in p.stderr and "terminate called" not in p.stderr


# ---- the stages ----------------------------------------------------------------------------------

def test_deleted_record_cannot_pass_a_checkpoint_for_another_config(tmp_path):
  """Delete distill_config.json and rerun with another learning rate: the student's
  checkpoint is refused, naming it and the field, by the distillation and by the probe stage."""
  wd = str(tmp_path)
  c = _config()
  distill.start_stage(c, wd, "distill")
  distill.distill(c, wd)
  os.remove(os.path.join(wd, "distill_config.json"))
  changed = _config(lr=0.01)
  distill.start_stage(changed, wd, "distill")  # no record left to compare with ...
  ckpt = os.path.join(wd, "student", "checkpoints")
  with pytest.raises(io.ConfigMismatchError) as e:  # ... but the checkpoint knows
    distill.distill(changed, wd)
  assert os.path.join(ckpt, "6") in str(e.value)
  assert "distill.lr: 0.003 (recorded) -> 0.01 (now)" in str(e.value)
  os.remove(os.path.join(wd, "distill_config.json"))
  with pytest.raises(io.ConfigMismatchError, match=r"distill\.lr: 0\.003 \(recorded\) -> 0\.01"):
    distill.start_stage(changed, wd, "linear_probe")
  with pytest.raises(io.ConfigMismatchError, match=r"checkpoints/6"):
    distill.model_variables(changed, wd, "student")


def test_stages_refuse_a_workdir_without_earlier_outputs(tmp_path):
  wd = str(tmp_path)
  c = _config()
  for stage in ("linear_probe", "evaluate"):
    with pytest.raises(WorkdirError, match=r"no distilled student.*experiments\.distill"):
      distill.start_stage(c, wd, stage)
  assert not os.listdir(wd)  # nothing written, no teacher trained
  distill.distill(_config(stop_after=4), wd)
  with pytest.raises(WorkdirError, match=r"stopped at step 4 of 6.*experiments\.distill"):
    distill.start_stage(c, wd, "linear_probe")
  distill.distill(c, wd)
  distill.start_stage(c, wd, "linear_probe")
  with pytest.raises(WorkdirError, match=r"lacks the trained probes .*experiments\.linear_probe"):
    distill.start_stage(c, wd, "evaluate")


BAD_FIELDS = [("distill.lr", math.nan), ("distill.lr", -1e-3), ("distill.batch_size", 0),
              ("distill.log_every", 0), ("distill.steps", -5), ("distill.checkpoint_every", 0),
              ("distill.stop_after", 99), ("distill.weight_decay", math.inf),
              ("teacher.pretrain.lr", 0.0), ("teacher.pretrain.steps", 0),
              ("teacher.pretrain.batch_size", -1), ("data.image_size", 0),
              ("data.augment", "rotate"), ("seed", -1), ("distill.warmup_steps", 1.5),
              ("probe.epochs", 0), ("probe.lr", math.nan), ("probe.optimizer", "sgd"),
              ("probe.ridge_lambdas", "1,-1"), ("probe.batch_size", 0),
              ("eval.baseline_fractions", "0.5,2"), ("eval.metric", "auc"),
              ("eval.baseline", "csv:/no/such.csv"), ("probe.primary", "svm")]


@pytest.mark.parametrize("field,value", BAD_FIELDS, ids=[f"{f}={v}" for f, v in BAD_FIELDS])
def test_every_field_checked_before_any_work(tmp_path, field, value):
  c = _config()
  c.teacher.source = "pretrain"
  *sections, leaf = field.split(".")
  node = c
  for s in sections:
    node = node[s]
  with node.ignore_type():
    node[leaf] = value
  stage = "distill" if field.split(".")[0] in ("distill", "teacher", "data", "seed") \
      else "evaluate"
  with pytest.raises(ConfigError, match=rf"config\.{field}={value!r} is not allowed; allowed:"):
    if stage == "distill":
      distill.distill(c, str(tmp_path))  # before the teacher is pre-trained
    else:
      distill.start_stage(c, str(tmp_path), stage)
  assert not os.listdir(tmp_path)


# ---- cached features and probes ------------------------------------------------------------------

def test_feature_cache_checked_and_stamped(tmp_path):
  ds, config, variables, _, _ = _setup()
  cache = str(tmp_path / "features")
  f0, y0 = features.cached_features(Enc(), variables, ds, config, cache)
  (name,) = os.listdir(cache)
  path = os.path.join(cache, name)
  stamp = io.read_stamp(io.load_npz(path))
  bad = {"nan": (np.full_like(f0, np.nan), y0, r"non-finite"),
         "wide": (np.zeros((len(f0), 64), np.float32), y0, r"shape \(7, 64\), expected \(7, 3\)"),
         "float64": (f0.astype(np.float64), y0, r"dtype float64"),
         "short": (f0[:3], y0[:3], r"shape \(3, 3\)")}
  for what, (f, y, reason) in bad.items():
    np.savez(path, features=f, labels=y, **{io.STAMP_KEY: io.stamp_array(stamp)})
    with pytest.warns(RuntimeWarning, match=reason):
      f1, y1 = features.cached_features(Enc(), variables, ds, config, cache)
    np.testing.assert_array_equal(f1, f0, err_msg=what)
    np.testing.assert_array_equal(y1, y0)
  # Features of another encoder's weights under the same file name: recomputed.
  other = jax.tree.map(lambda a: a * 2.0, variables)
  with pytest.warns(RuntimeWarning, match=r"other settings \(encoder:"):
    f2, _ = features.cached_features(Enc(), other, ds, config, cache)
  assert not np.array_equal(f2, f0)
  np.savez(path, features=f0, labels=y0)  # a file without a stamp
  with pytest.warns(RuntimeWarning, match=r"<stamp>"):
    features.cached_features(Enc(), variables, ds, config, cache)


def test_evaluate_refuses_a_probe_of_other_settings(tmp_path):
  path = str(tmp_path / "student_ridge")
  io.atomic_write(path + ".npz", lambda f: np.savez(f, kernel=np.ones((4, 3), np.float32),
                                                    bias=np.zeros(3, np.float32), kind="ridge"),
                  binary=True)
  made = io.stamp({"config": {"probe.lr": 0.1}, "encoder": "abc"})
  io.write_json(path + ".json", {"lambda": 1.0, "stamp": made})
  assert stages._load_probe(path + ".npz", made, 4, 3).kind == "ridge"
  with pytest.raises(io.ConfigMismatchError, match=r"student_ridge\.json.*probe\.lr: 0\.1 "
                     r"\(recorded\) -> 0\.5.*experiments\.linear_probe"):
    stages._load_probe(path + ".npz", io.stamp({"config": {"probe.lr": 0.5}, "encoder": "abc"}),
                       4, 3)
  with pytest.raises(io.CorruptFileError, match=r"'kernel' has shape \(4, 3\), expected \(8, 3\)"):
    stages._load_probe(path + ".npz", made, 8, 3)
  assert stages._cached_probe(path, made, 4, 3) == {"lambda": 1.0}
  assert stages._cached_probe(path, io.stamp({"x": 1}), 4, 3) is None  # retrained
  assert not os.path.exists(path + ".npz")


# ---- fault injection -----------------------------------------------------------------------------

def _leaves(variables):
  return [np.asarray(x) for x in jax.tree.leaves(variables)]


@pytest.mark.slow
def test_distillation_fault_injection(tmp_path):
  """A short distillation "killed" at a random step (``stop_after``), then a random file of its
  checkpoints damaged (deleted or truncated) or none, then rerun: the final student equals the
  undisturbed run's, or the rerun stops with a featcon error naming the checkpoint folder and
  step; following that error's advice (deleting the named step) then gives the undisturbed
  result too."""
  full = _leaves(distill.distill(_config(), str(tmp_path / "full")))
  rng = np.random.default_rng(0)
  outcomes = {"equal": 0, "named": 0}
  for trial in range(6):
    wd = str(tmp_path / f"t{trial}")
    distill.distill(_config(stop_after=int(rng.integers(1, 6))), wd)
    ckpt = os.path.join(wd, "student", "checkpoints")
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(ckpt) for f in fs)
    how = ["none", "delete", "truncate"][int(rng.integers(0, 3))]
    if how != "none":
      victim = files[int(rng.integers(0, len(files)))]
      if how == "delete":
        os.remove(victim)
      else:
        with open(victim, "r+b") as f:
          f.truncate(os.path.getsize(victim) // 2)
    try:
      out = distill.distill(_config(), wd)
    except FeatconError as e:
      msg = str(e)
      assert ckpt in msg and "step" in msg and "\n" not in msg, msg
      outcomes["named"] += 1
      step_dir = msg.split("delete ")[1].split(" to resume")[0].strip("'")
      shutil.rmtree(step_dir)
      out = distill.distill(_config(), wd)
    else:
      outcomes["equal"] += 1
    for a, b in zip(full, _leaves(out), strict=True):
      np.testing.assert_array_equal(a, b)
  print(f"fault injection: {outcomes}")  # the counts docs/reliability.md reports
  assert sum(outcomes.values()) == 6


ANALYZE_BAD = [("holdout", 1.5), ("batch_size", 0), ("density_threshold", math.nan),
               ("selectivity_mode", "max"), ("data.n_per_domain", 0),
               ("padding.learning_rate", -1.0), ("padding.widths", (8, 0)), ("padding.seeds", ())]


@pytest.mark.parametrize("field,value", ANALYZE_BAD, ids=[f"{f}={v}" for f, v in ANALYZE_BAD])
def test_analyze_fields_checked_before_any_work(tmp_path, field, value):
  from configs import analyze  # pylint: disable=g-import-not-at-top
  from featcon.analysis import experiment  # pylint: disable=g-import-not-at-top
  c = analyze.get_config("smoke")
  *sections, leaf = field.split(".")
  node = c
  for s in sections:
    node = node[s]
  with node.ignore_type():
    node[leaf] = value
  wd = str(tmp_path / "a")
  with pytest.raises(ConfigError, match=rf"config\.{re.escape(field)}=.* is not allowed; allowed:"):
    experiment.run(c, wd)
  assert not os.path.exists(wd)


def test_recalibration_cache_checked_and_stamped(tmp_path):
  from featcon.distill import batchnorm  # pylint: disable=g-import-not-at-top
  ds, config, variables, _, _ = _setup(n=8)
  config.distill = {"bn_recalibration": 8, "batch_size": 4}
  d = str(tmp_path)
  first = batchnorm.maybe_recalibrated(Enc(), variables, lambda: ds, config, d, data_ref="toy")
  path = batchnorm.cache_path(d, config)
  z = io.load_npz(path)
  stamp = io.read_stamp(z)
  assert stamp is not None and first["batch_stats"]["bn"]["mean"].shape == (3,)
  cases = {"nan": ({"bn/mean": np.full(3, np.nan, np.float32), "bn/var": z["bn/var"]},
                   "non-finite"),
           "shape": ({"bn/mean": np.zeros(4, np.float32), "bn/var": z["bn/var"]}, r"shape \(4,\)"),
           "missing": ({"bn/mean": z["bn/mean"]}, r"lacks the array 'bn/var'")}
  for what, (arrays, reason) in cases.items():
    np.savez(path, **arrays, **{io.STAMP_KEY: io.stamp_array(stamp)})
    with pytest.warns(RuntimeWarning, match=reason):
      again = batchnorm.maybe_recalibrated(Enc(), variables, lambda: ds, config, d,
                                           data_ref="toy")
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)
  # Statistics cached for other weights or another data set are not reused.
  with pytest.warns(RuntimeWarning, match=r"other settings \(data: 'toy' \(recorded\)"):
    batchnorm.maybe_recalibrated(Enc(), variables, lambda: ds, config, d, data_ref="other")
  other = jax.tree.map(lambda a: a * 2.0, variables)
  with pytest.warns(RuntimeWarning, match=r"other settings \(variables:"):
    batchnorm.maybe_recalibrated(Enc(), other, lambda: ds, config, d, data_ref="other")


def test_probe_stage_reuses_its_own_probes_and_evaluate_checks_their_stamps(tmp_path,
                                                                            monkeypatch):
  """distill -> linear_probe -> evaluate in process: a rerun of linear_probe reuses every probe
  (their stamps match), the evaluation reads them, and a probe trained under other probe
  settings is refused by the evaluation even when linear_probe_config.json is gone."""
  from featcon.probe import linear  # pylint: disable=g-import-not-at-top
  wd = str(tmp_path)
  c = _config()
  c.probe.models = "student"
  c.eval.baseline = "none"
  for stage, run in (("distill", distill.distill), ("linear_probe", stages.train_probes),
                     ("evaluate", stages.evaluate)):
    distill.start_stage(c, wd, stage)
    out = run(c, wd)
  assert {r["probe"] for r in out["rows"]} == {"adamw", "ridge"}
  assert out["stamp"]["fields"]["probe.lr"] == c.probe.lr
  def no_training(*a, **k):
    raise AssertionError("a probe was retrained")
  monkeypatch.setattr(linear, "ridge_probe", no_training)
  monkeypatch.setattr(linear, "train_linear_probe", no_training)
  again = stages.train_probes(c, wd)
  assert set(again) == {"student_adamw", "student_ridge"}
  assert stages.evaluate(c, wd)["rows"] == out["rows"]
  os.remove(os.path.join(wd, "linear_probe_config.json"))
  other = _config()
  other.probe.models, other.eval.baseline = "student", "none"
  other.probe.lr = 0.5
  with pytest.raises(io.ConfigMismatchError, match=r"student_adamw\.json' holds a probe made "
                     r"under other settings.*probe\.lr.*experiments\.linear_probe"):
    stages.evaluate(other, wd)
