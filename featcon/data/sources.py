"""Data sources: one random-access interface over TFDS, image folders and in-memory arrays.

A *data source* is any object with ``__len__`` and ``__getitem__(i) -> {"image": uint8 HxWxC,
"label": int}`` (the protocol of ``tfds.data_source`` and grain). Everything downstream (the
loader, feature extraction) sees only this protocol.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Protocol, Sequence

import numpy as np

from featcon.errors import FeatconError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DataSource(Protocol):
  def __len__(self) -> int: ...
  def __getitem__(self, index: int) -> dict[str, Any]: ...


class DatasetNotPreparedError(FeatconError, FileNotFoundError):
  """A TFDS data set (or an image folder) is not on disk; the message says how to prepare it."""


def _check_index(index: int, n: int) -> int:
  index = int(index)
  if not -n <= index < n:
    raise IndexError(f"index {index} out of range for a data source of length {n}")
  return index % n


@dataclasses.dataclass
class ArraySource:
  """In-memory images ``(N, H, W, C)`` uint8 and integer labels ``(N,)``."""
  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    self.images = np.asarray(self.images)
    self.labels = np.asarray(self.labels, dtype=np.int64)
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise ValueError(f"images must be uint8 (N, H, W, C); got {self.images.dtype} "
                       f"{self.images.shape}")
    if len(self.images) != len(self.labels):
      raise ValueError(f"images ({len(self.images)}) and labels ({len(self.labels)}) differ "
                       "in length")

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, index):
    i = _check_index(index, len(self))
    return {"image": self.images[i], "label": int(self.labels[i])}


class ImageFolderSource:
  """Images in ``root/<class name>/<file>``; labels index ``class_names`` (default: sorted dirs).

  Folders named in ``class_names`` but absent are allowed (a test domain may lack classes);
  folders on disk that are not in ``class_names`` are skipped.
  """

  def __init__(self, root: str, class_names: Sequence[str] | None = None):
    if not os.path.isdir(root):
      raise DatasetNotPreparedError(
          f"image folder root={root!r} does not exist: expected root/<class>/<image> "
          "(see docs/distillation.md, 'Data preparation')")
    on_disk = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    self.class_names = list(class_names) if class_names is not None else on_disk
    index = {c: i for i, c in enumerate(self.class_names)}
    self.files, labels = [], []
    for c in on_disk:
      if c not in index:
        continue
      for f in sorted(os.listdir(os.path.join(root, c))):
        if f.lower().endswith(IMAGE_EXTENSIONS):
          self.files.append(os.path.join(root, c, f))
          labels.append(index[c])
    if not self.files:
      raise DatasetNotPreparedError(
          f"image folder root={root!r} holds no images in class folders "
          f"(allowed extensions: {', '.join(IMAGE_EXTENSIONS)})")
    self.labels = np.asarray(labels, dtype=np.int64)

  def __len__(self):
    return len(self.files)

  def __getitem__(self, index):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    i = _check_index(index, len(self))
    with Image.open(self.files[i]) as im:
      image = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return {"image": image, "label": int(self.labels[i])}


class TfdsSource:
  """``tfds.data_source(name, split, download=False)``: array_record files, no TensorFlow.

  Raises DatasetNotPreparedError (naming the data set, the data dir and the command to build
  it) instead of TFDS's network retry or its misleading "TFRECORD is not supported" error.
  """

  def __init__(self, name: str, split: str, data_dir: str | None = None):
    try:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("TFDS data sets need `pip install -e .[data]` "
                        "(tensorflow-datasets, importlib_resources, Pillow)") from e
    self.name, self.split = name, split
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # pylint: disable=broad-except
      builder = tfds.builder(name, data_dir=data_dir)
      if not builder.is_prepared():
        raise DatasetNotPreparedError(
            f"TFDS data set {name!r} is not prepared in data_dir={builder.data_dir!r}. "
            f"Build it once with TensorFlow installed: `pip install tensorflow-cpu && "
            f"tfds build {name} --file_format=array_record"
            + (f" --data_dir={data_dir}" if data_dir else "")
            + "` (manual downloads, e.g. ImageNet's tars, go to <data_dir>/downloads/manual); "
            "see docs/distillation.md") from e
      raise ValueError(f"cannot read TFDS {name!r} split={split!r}: {e}") from e

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    # Mock sources reject batched reads: read one index at a time.
    ex = self._source[_check_index(index, len(self))]
    image = np.asarray(ex["image"], dtype=np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    return {"image": image, "label": int(ex["label"])}


class MappedSource:
  """A source restricted to ``indices`` with labels remapped through ``label_map``."""

  def __init__(self, source: DataSource, indices: np.ndarray, label_map: np.ndarray | None,
               transform=None):
    self.source, self.indices = source, np.asarray(indices, dtype=np.int64)
    self.label_map, self.transform = label_map, transform

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, index):
    ex = dict(self.source[int(self.indices[_check_index(index, len(self))])])
    if self.label_map is not None:
      ex["label"] = int(self.label_map[ex["label"]])
    if self.transform is not None:
      ex["image"] = self.transform(ex["image"])
    return ex


def source_labels(source: DataSource) -> np.ndarray:
  """All labels of a source (fast path for sources that keep them in memory)."""
  labels = getattr(source, "labels", None)
  if labels is not None:
    return np.asarray(labels)
  return np.asarray([source[i]["label"] for i in range(len(source))], dtype=np.int64)


class ConcatSource:
  """Several sources read as one (e.g. DomainNet's three training domains)."""

  def __init__(self, sources: Sequence[DataSource]):
    self.sources = list(sources)
    self._ends = np.cumsum([len(s) for s in self.sources])

  def __len__(self):
    return int(self._ends[-1]) if len(self._ends) else 0

  def __getitem__(self, index):
    i = _check_index(index, len(self))
    k = int(np.searchsorted(self._ends, i, side="right"))
    return self.sources[k][i - (int(self._ends[k - 1]) if k else 0)]
