"""Cached teacher targets (featcon/distill/targets.py): the loader's targets follow its batch
indices, the cache is keyed by teacher and data, and a step on cached targets equals the step
that runs the teacher."""
import jax
import numpy as np
import pytest

pytest.importorskip("PIL")
from configs.distill import real_experiment  # pylint: disable=g-import-not-at-top
from featcon import models  # pylint: disable=g-import-not-at-top
from featcon import training as train_lib  # pylint: disable=g-import-not-at-top
from featcon.data import registry  # pylint: disable=g-import-not-at-top
from featcon.data.loader import Loader  # pylint: disable=g-import-not-at-top
from featcon.data.sources import ArraySource  # pylint: disable=g-import-not-at-top
from featcon.distill import student, targets  # pylint: disable=g-import-not-at-top
from featcon.probe import features  # pylint: disable=g-import-not-at-top


def _source(n=20, side=32):
  rng = np.random.default_rng(0)
  return ArraySource(rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
                     rng.integers(0, 10, n))


def test_target_loader_rows_are_the_targets_of_the_batch_indices():
  src = _source()
  t = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
  loader = targets.TargetLoader(src, t, 8, 32, seed=4)
  plain = Loader(src, 8, 32, seed=4)
  for step in (0, 2, 3):  # 3: crosses into the second epoch's permutation
    b = loader.train_batch(step)
    np.testing.assert_array_equal(b["image"], plain.train_batch(step)["image"])
    _, idx = plain.batch_indices(step)
    np.testing.assert_array_equal(b["target"], t[idx])
    np.testing.assert_array_equal(b["target"][:, 0] / 3, idx)  # row i of t is 3 i, 3 i + 1, ...
  with pytest.raises(ValueError, match="targets hold 19 rows for a source of 20"):
    targets.TargetLoader(src, t[:19], 8, 32)


def _tiny():
  c = real_experiment.get_config("ci")
  c.model.teacher = "tiny-rn"
  c.model.overrides = {"output_dim": 16, "image_size": 32}
  module = models.make_encoder("tiny-rn", **c.model.overrides)
  return c, module, train_lib.init_variables(module, 32, 0)


def test_targets_cache_is_keyed_by_teacher_and_data(tmp_path, monkeypatch):
  c, module, variables = _tiny()
  ds = registry.Dataset("x", "train", _source(), 10, None)
  t1, p1 = targets.teacher_targets(module, variables, ds, c, str(tmp_path), "x:train", 0)
  ref, _ = features.extract_features(module, variables, ds, c)
  np.testing.assert_array_equal(t1, ref)  # the eval-mode embeddings, in source order
  def boom(*a, **k):
    raise AssertionError("recomputed a cached target file")
  monkeypatch.setattr(features, "extract_features", boom)
  t2, p2 = targets.teacher_targets(module, variables, ds, c, str(tmp_path), "x:train", 0)
  assert p2 == p1
  np.testing.assert_array_equal(t2, t1)
  other = jax.tree.map(lambda v: v + 1e-3, variables)
  assert targets.variables_digest(other) != targets.variables_digest(variables)
  with pytest.raises(AssertionError, match="recomputed"):  # another teacher: another file
    targets.teacher_targets(module, other, ds, c, str(tmp_path), "x:train", 0)
  with pytest.raises(AssertionError, match="recomputed"):  # another data set: another file
    targets.teacher_targets(module, variables, ds, c, str(tmp_path), "y:train", 0)


def test_step_on_cached_targets_equals_the_step_with_the_teacher():
  c, teacher, tvars = _tiny()
  stud = models.make_encoder("tiny-rn", output_dim=16, image_size=32)
  svars = train_lib.init_variables(stud, 32, 1)
  tx = train_lib.make_optimizer(1e-2, 0.05, 10, 0)
  x = np.random.default_rng(2).normal(size=(4, 32, 32, 3)).astype(np.float32)
  t_emb = teacher.apply(tvars, x, train=False)[0]
  states = [train_lib.new_state(jax.tree.map(np.array, svars["params"]),
                                jax.tree.map(np.array, svars.get("batch_stats")), tx)
            for _ in range(2)]
  a, ma = jax.jit(student.distill_step(teacher, stud, tx, 0.0))(
      states[0], {"image": x}, tvars)
  b, mb = jax.jit(student.cached_distill_step(stud, tx))(
      states[1], {"image": x, "target": np.asarray(t_emb)})
  np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=1e-6)
  for u, v in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-7)


def test_cached_targets_refuse_a_block_loss(tmp_path):
  c = real_experiment.get_config("ci")
  c.distill.block_weight = 0.1
  c.teacher.source = "random"
  with pytest.raises(ValueError, match=r"block_weight=0.1 is not allowed with "
                                       r"config.distill.cached_targets=True"):
    student.distill(c, str(tmp_path))
