"""The fine-tune teacher mode (featcon/distill/finetune.py): the on-the-fly corruption plan and
loader against hand references, and config errors raised before any work."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("PIL")
from configs.distill import real_experiment  # pylint: disable=g-import-not-at-top
from featcon import io  # pylint: disable=g-import-not-at-top
from featcon.data import preprocess  # pylint: disable=g-import-not-at-top
from featcon.data.loader import Loader  # pylint: disable=g-import-not-at-top
from featcon.data.sources import ArraySource  # pylint: disable=g-import-not-at-top
from featcon.distill import finetune  # pylint: disable=g-import-not-at-top


def _source(n=24, side=16, seed=0):
  rng = np.random.default_rng(seed)
  return ArraySource(rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
                     rng.integers(0, 10, n))


def test_corruption_plan_is_a_function_of_seed_and_step_with_the_given_rates():
  names, sev = ["gaussian_noise", "fog"], [2, 5]
  a = finetune.corruption_plan(7, 3, 20_000, names, sev, 0.3)
  b = finetune.corruption_plan(7, 3, 20_000, names, sev, 0.3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  on, kind, s = a
  assert abs(on.mean() - 0.3) < 0.015  # binomial sd 0.0032
  assert set(np.unique(kind)) == {0, 1} and abs((kind == 1).mean() - 0.5) < 0.02
  assert set(np.unique(s)) == {2, 5}
  other = finetune.corruption_plan(7, 4, 20_000, names, sev, 0.3)[0]
  assert (other != on).mean() > 0.3  # another step, another draw
  assert not finetune.corruption_plan(7, 3, 100, names, sev, 0.0)[0].any()


def test_corrupting_loader_without_corruption_is_the_plain_loader():
  src = _source()
  plain = Loader(src, 8, 16, seed=5).train_batch(2)
  got = finetune.CorruptingLoader(src, 8, 16, names=["contrast"], severities=[3], fraction=0.0,
                                  seed=5).train_batch(2)
  np.testing.assert_array_equal(got["image"], plain["image"])
  np.testing.assert_array_equal(got["label"], plain["label"])


def test_corrupting_loader_applies_contrast_by_its_closed_form():
  """Every row corrupted by contrast at severity 5: ``clip((x - m) 0.05 + m)`` with ``m`` the
  per-channel image mean (Hendrycks & Dietterich), rounded to uint8, then CLIP-normalised."""
  src = _source()
  loader = finetune.CorruptingLoader(src, 8, 16, names=["contrast"], severities=[5],
                                     fraction=1.0, seed=5)
  got = loader.train_batch(1)
  _, idx = loader.batch_indices(1)
  for row, i in enumerate(idx):
    x = src.images[i].astype(np.float64) / 255
    m = x.mean(axis=(0, 1), keepdims=True)
    ref = np.round(np.clip((x - m) * 0.05 + m, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_allclose(got["image"][row], preprocess.clip_preprocess(ref, 16),
                               atol=1e-5)
    assert got["label"][row] == src.labels[i]


def test_corrupting_loader_rows_are_those_of_the_full_batch():
  src = _source()
  loader = finetune.CorruptingLoader(src, 8, 16, names=["gaussian_noise", "fog"],
                                     severities=[1, 4], fraction=0.5, seed=1)
  full = loader.train_batch(3)
  part = loader.train_batch(3, slice(2, 6))
  np.testing.assert_array_equal(part["image"], full["image"][2:6])


@pytest.mark.parametrize("field,value,match", [
    ("corruptions", "gaussian_noise,snow", r"corruptions entry 'snow' is not allowed"),
    ("severities", "0,3", r"severities='0,3' is not allowed; allowed: a comma-separated subset"),
    ("severities", "x", r"severities='x' is not allowed"),
    ("fraction", 1.5, r"fraction=1.5 is not allowed; allowed: 0..1"),
    ("eval_every", 0, r"eval_every=0 is not allowed; allowed: > 0"),
    ("heldout", "nope:val", r"heldout='nope:val'"),
])
def test_bad_finetune_settings_name_field_value_and_allowed(field, value, match):
  c = real_experiment.get_config("ci")
  c.teacher.finetune[field] = value
  with pytest.raises(ValueError, match=match):
    finetune.settings(c)


def test_a_teacher_folder_of_another_config_is_refused_before_any_work(tmp_path):
  c = real_experiment.get_config("ci")
  c.teacher.finetune.dir = str(tmp_path / "t")
  os.makedirs(c.teacher.finetune.dir)
  fields = finetune._teacher_fields(c)
  fields["teacher.pretrain"]["steps"] = 999
  with open(os.path.join(c.teacher.finetune.dir, "finetune_config.json"), "w") as f:
    json.dump({"fingerprint": io.fingerprint(fields), "fields": fields}, f)
  with pytest.raises(io.ConfigMismatchError, match=r"teacher.pretrain.*999"):
    finetune.finetune_teacher(c, str(tmp_path / "run"))
  # The teacher's fields leave out config.seed and the folder: every seed shares one teacher.
  c2 = real_experiment.get_config("ci")
  c2.seed, c2.teacher.finetune.dir = 3, "/elsewhere"
  assert finetune._teacher_fields(c2) == finetune._teacher_fields(real_experiment.get_config("ci"))
