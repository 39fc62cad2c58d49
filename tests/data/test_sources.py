import os

import numpy as np
import pytest


# Needs the "data" extras (pip install -e ".[test,data]"); skipped without them.
for _m in ("PIL",):
  pytest.importorskip(_m)
from PIL import Image
from featcon.data import ArraySource, DatasetNotPreparedError, ImageFolderSource, TfdsSource
from featcon.data import Loader, preprocess


def _folder(tmp_path, classes=("a", "b"), per_class=3):
  for c in classes:
    os.makedirs(tmp_path / c)
    for i in range(per_class):
      Image.fromarray(np.full((5, 7, 3), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
  return str(tmp_path)


def test_array_source_checks():
  src = ArraySource(np.zeros((3, 4, 4, 3), np.uint8), [0, 1, 2])
  assert len(src) == 3 and src[-1]["label"] == 2
  with pytest.raises(ValueError, match="uint8"):
    ArraySource(np.zeros((3, 4, 4, 3), np.float32), [0, 1, 2])
  with pytest.raises(ValueError, match="differ"):
    ArraySource(np.zeros((3, 4, 4, 3), np.uint8), [0, 1])
  with pytest.raises(IndexError, match="out of range"):
    src[3]


def test_image_folder(tmp_path):
  src = ImageFolderSource(_folder(tmp_path), class_names=["b", "a", "missing"])
  assert len(src) == 6
  ex = src[0]
  assert ex["image"].shape == (5, 7, 3) and ex["image"].dtype == np.uint8
  assert sorted(set(src.labels.tolist())) == [0, 1]
  assert src.labels[0] == 1  # folder "a" is class 1 in the given order


def test_image_folder_missing(tmp_path):
  with pytest.raises(DatasetNotPreparedError, match="root=.*does not exist"):
    ImageFolderSource(str(tmp_path / "nope"))
  os.makedirs(tmp_path / "empty" / "a")
  with pytest.raises(DatasetNotPreparedError, match="holds no images"):
    ImageFolderSource(str(tmp_path / "empty"))


def test_tfds_not_prepared_is_clear_and_fast(tmp_path):
  with pytest.raises(DatasetNotPreparedError) as e:
    TfdsSource("cifar10", "train", data_dir=str(tmp_path))
  msg = str(e.value)
  assert "'cifar10' is not prepared" in msg and "tfds build cifar10" in msg
  assert str(tmp_path) in msg


def test_clip_preprocess_and_red_pad():
  img = np.random.default_rng(0).integers(0, 255, (40, 60, 3)).astype(np.uint8)
  out = preprocess.clip_preprocess(img, 32)
  assert out.shape == (32, 32, 3) and out.dtype == np.float32
  flat = np.full((32, 32, 3), 255, np.uint8)
  np.testing.assert_allclose(preprocess.clip_preprocess(flat, 32)[0, 0],
                             (1 - preprocess.CLIP_MEAN) / preprocess.CLIP_STD, rtol=1e-6)
  red = preprocess.pad_brick_red(np.zeros((32, 32, 3), np.uint8))
  assert red.shape == (32, 32, 3)
  np.testing.assert_array_equal(red[0, 0], preprocess.BRICK_RED)
  assert red[16, 16].max() == 0
  with pytest.raises(ValueError, match="augment='bad'"):
    preprocess.train_augment(img, 32, np.random.default_rng(0), "bad")


def test_loader_deterministic_and_complete():
  imgs = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
  src = ArraySource(imgs, np.arange(10))
  a = Loader(src, 4, 8, augment="crop_flip", seed=3)
  b = Loader(src, 4, 8, augment="crop_flip", seed=3)
  for step in (0, 1, 7):
    np.testing.assert_array_equal(a.train_batch(step)["image"], b.train_batch(step)["image"])
  # One epoch of steps covers every example once.
  seen = np.concatenate([a.train_batch(s)["label"] for s in range(5)])
  assert sorted(seen[:10].tolist()) == list(range(10))
  batches = list(Loader(src, 4, 8).eval_iter())
  labels = np.concatenate([b["label"][b["valid"]] for b in batches])
  np.testing.assert_array_equal(labels, np.arange(10))
