"""Registry of the paper's data sets (Section 2, Appendix E) with their label handling.

``load(name, split)`` returns a :class:`Dataset`: a data source plus its label space.
Label handling:
- ImageNet-R / ImageNet-A: TFDS labels live in ImageNet's 1000-class space but only 200
  classes occur, so evaluation masks the logits to those 200 (Hendrycks et al. 2021).
  Masks are expressed as ``class_groups`` (one group per kept class); labels are remapped
  to the group index. ObjectNet uses the same mechanism with groups of several ImageNet classes
  (max over each group's logits), read from the mapping files that ship with ObjectNet.
- DomainNet-40: the 40-class subset (Tan et al. 2020) of TFDS ``domainnet`` (345 classes);
  examples of other classes are dropped, labels remapped to 0..39. Sketch is the OOD domain.
- PACS (Sketch OOD), iWildCam-WILDS, Camelyon17-WILDS, ObjectNet: image folders.
- CIFAR-10 red: 8 px of brick red (150, 50, 50) padded and resized back (Appendix F.4).
- digits_{grey,colour,all}: the offline benchmark (featcon.data.digits).
- {fmnist,mnist,skdigits}_{grass,textures,photos,all} and {fmnist,mnist,skdigits}_c_<corruption>
  (splits s1..s5): the offline real-image ID/OOD benchmark (featcon.data.real,
  featcon.data.corruptions).
Splits that a source lacks (a validation split of a training domain) are carved from its train
split by a fixed seeded partition (``val_fraction``), the DomainBed convention.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import numpy as np

from featcon.data import corruptions
from featcon.data import digits as digits_lib
from featcon.data import preprocess
from featcon.data import real as real_lib
from featcon.data.sources import (DatasetNotPreparedError, DataSource, ImageFolderSource,
                                  MappedSource, TfdsSource, source_labels)

_LISTS = os.path.join(os.path.dirname(__file__), "class_lists")


@functools.lru_cache(maxsize=None)
def class_list(name: str) -> tuple[str, ...]:
  """A shipped class list (``class_lists/<name>.txt``), one name per line."""
  with open(os.path.join(_LISTS, name + ".txt")) as f:
    return tuple(line.strip() for line in f if line.strip())


def imagenet_class_mask(subset: str) -> np.ndarray:
  """Indices (into ImageNet's 1000 classes, TFDS order) of ImageNet-R or ImageNet-A's 200."""
  allowed = {"imagenet_r": "imagenet_r_wnids", "imagenet_a": "imagenet_a_wnids"}
  if subset not in allowed:
    raise ValueError(f"subset={subset!r} is not allowed; allowed: {', '.join(allowed)}")
  wnids = set(class_list(allowed[subset]))
  return np.asarray([i for i, w in enumerate(class_list("imagenet_wnids")) if w in wnids])


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How to read one data set and map its labels.

  kind: "tfds", "folder", "digits", "real" (objects on backgrounds) or "real_c" (the real ID
  test set under ``corruption``). splits: our split names; ``split_map`` renames them for
  the backend; ``carved`` lists the splits made from the backend's train split by a fixed
  seeded partition ("val": a ``val_fraction`` hold-out, "train": the rest).
  num_classes: size of the probe's label space this set is evaluated in.
  """
  name: str
  kind: str
  splits: tuple[str, ...]
  num_classes: int
  tfds_name: str | None = None
  folder: str | None = None
  class_names: tuple[str, ...] | None = None
  keep_classes: str | None = None     # class list whose members are kept (DomainNet-40)
  class_mask: str | None = None       # "imagenet_r" | "imagenet_a" | "objectnet"
  transform: str | None = None        # "brick_red"
  digits_kind: str | None = None
  real_objects: str | None = None     # featcon.data.real.OBJECTS
  real_background: str | None = None  # featcon.data.real.BACKGROUNDS
  corruption: str | None = None       # featcon.data.corruptions.CORRUPTIONS
  split_map: tuple[tuple[str, str], ...] = ()
  carved: tuple[str, ...] = ()
  val_fraction: float = 0.2


def _specs() -> dict[str, DatasetSpec]:
  s = {}
  def add(spec):
    s[spec.name] = spec
  add(DatasetSpec("imagenet", "tfds", ("train", "val", "validation"), 1000,
                  tfds_name="imagenet2012", carved=("train", "val"), val_fraction=0.01))
  add(DatasetSpec("imagenet_v2", "tfds", ("test",), 1000,
                  tfds_name="imagenet_v2/matched-frequency"))
  add(DatasetSpec("imagenet_r", "tfds", ("test",), 1000, tfds_name="imagenet_r",
                  class_mask="imagenet_r"))
  add(DatasetSpec("imagenet_a", "tfds", ("test",), 1000, tfds_name="imagenet_a",
                  class_mask="imagenet_a"))
  add(DatasetSpec("imagenet_sketch", "tfds", ("test",), 1000, tfds_name="imagenet_sketch"))
  add(DatasetSpec("objectnet", "folder", ("test",), 1000, folder="objectnet-1.0",
                  class_mask="objectnet"))
  for d in ("real", "painting", "clipart", "sketch"):
    add(DatasetSpec(f"domainnet40_{d}", "tfds", ("train", "val", "test"), 40,
                    tfds_name=f"domainnet/{d}", keep_classes="domainnet40",
                    carved=("train", "val")))
  for d in ("photo", "art_painting", "cartoon", "sketch"):
    add(DatasetSpec(f"pacs_{d}", "folder", ("train", "val", "test"), 7, folder=f"pacs/{d}",
                    class_names=class_list("pacs"), carved=("train", "val")))
  # WILDS exported to class folders named by the WILDS label index (docs/distillation.md), so
  # every split shares one label space even where a split lacks some classes.
  add(DatasetSpec("iwildcam", "folder", ("train", "id_val", "id_test", "val", "test"), 182,
                  folder="iwildcam/{split}", class_names=tuple(str(i) for i in range(182))))
  add(DatasetSpec("camelyon17", "folder", ("train", "id_val", "val", "test"), 2,
                  folder="camelyon17/{split}", class_names=("0", "1")))
  add(DatasetSpec("cifar10", "tfds", ("train", "val", "test"), 10, tfds_name="cifar10",
                  carved=("train", "val"), val_fraction=0.1))
  add(DatasetSpec("cifar10_red", "tfds", ("train", "val", "test"), 10, tfds_name="cifar10",
                  transform="brick_red", carved=("train", "val"), val_fraction=0.1))
  for k in digits_lib.KINDS:
    add(DatasetSpec(f"digits_{k}", "digits", digits_lib.SPLITS, 10, digits_kind=k))
  for o in real_lib.OBJECTS:
    for b in real_lib.BACKGROUNDS:
      add(DatasetSpec(f"{o}_{b}", "real", real_lib.BACKGROUND_SPLITS[b], 10, real_objects=o,
                      real_background=b))
    for c in corruptions.CORRUPTIONS:
      add(DatasetSpec(f"{o}_c_{c}", "real_c", real_lib.SEVERITY_SPLITS, 10, real_objects=o,
                      corruption=c))
  return s


REGISTRY: dict[str, DatasetSpec] = _specs()


@dataclasses.dataclass
class Dataset:
  """A data source and its label space.

  class_groups: None, or for each label of this set the probe classes whose logits it pools
  (max); predictions are the argmax over groups (ImageNet-R/-A masks, ObjectNet).
  """
  name: str
  split: str
  source: DataSource
  num_classes: int
  class_groups: tuple[tuple[int, ...], ...] | None = None


def get_spec(name: str) -> DatasetSpec:
  if name not in REGISTRY:
    raise ValueError(f"data set name={name!r} is unknown; allowed: {', '.join(sorted(REGISTRY))}")
  return REGISTRY[name]


def _carve(n: int, split: str, fraction: float, seed: int = 0) -> np.ndarray:
  perm = np.random.default_rng(seed).permutation(n)
  n_val = int(round(fraction * n))
  return np.sort(perm[:n_val] if split == "val" else perm[n_val:])


def _objectnet_groups(root: str) -> tuple[list[str], tuple[tuple[int, ...], ...]]:
  """ObjectNet's 113 ImageNet-overlapping classes and their ImageNet indices (mapping files)."""
  mdir = os.path.join(root, "mappings")
  try:
    with open(os.path.join(mdir, "folder_to_objectnet_label.json")) as f:
      folder_to_label = json.load(f)
    with open(os.path.join(mdir, "objectnet_to_imagenet_1k.json")) as f:
      on_to_in = json.load(f)
    with open(os.path.join(mdir, "imagenet_to_label_2012_v2")) as f:
      in_names = [line.strip() for line in f if line.strip()]
  except FileNotFoundError as e:
    raise DatasetNotPreparedError(
        f"ObjectNet mapping files are missing under {mdir!r} (they ship in objectnet-1.0.zip)"
    ) from e
  name_to_index = {n: i for i, n in enumerate(in_names)}
  folders, groups = [], []
  for folder, label in sorted(folder_to_label.items()):
    if label in on_to_in:
      idx = tuple(sorted(name_to_index[n.strip()] for n in on_to_in[label].split(";")))
      folders.append(folder)
      groups.append(idx)
  return folders, tuple(groups)


def load(name: str, split: str, data_dir: str | None = None, **render_kw: Any) -> Dataset:
  """Open data set ``name`` (a key of REGISTRY) at ``split`` with the paper's label handling.

  ``render_kw`` go to the generated sets' builders (digits: ``make_digits``; real:
  ``make_real`` / ``make_corrupted``: ``image_size``, ``seed``).
  """
  spec = get_spec(name)
  if split not in spec.splits:
    raise ValueError(f"split={split!r} is not allowed for data set {name!r}; allowed: "
                     f"{', '.join(spec.splits)}")
  groups = None
  if spec.kind == "digits":
    src = digits_lib.make_digits(spec.digits_kind, split, **render_kw)
    return Dataset(name, split, src, spec.num_classes)
  if spec.kind == "real":
    src = real_lib.make_real(spec.real_objects, spec.real_background, split, **render_kw)
    return Dataset(name, split, src, spec.num_classes)
  if spec.kind == "real_c":
    src = real_lib.make_corrupted(spec.real_objects, spec.corruption, split, **render_kw)
    return Dataset(name, split, src, spec.num_classes)
  base_split = "train" if split in spec.carved else dict(spec.split_map).get(split, split)
  if spec.kind == "tfds":
    tfds_dir = os.path.join(data_dir, "tensorflow_datasets") if data_dir else None
    src: DataSource = TfdsSource(spec.tfds_name, base_split, data_dir=tfds_dir)
  else:
    if data_dir is None:
      raise ValueError(f"data set {name!r} is read from image folders: set data_dir "
                       "(config.data.data_dir)")
    root = os.path.join(data_dir, spec.folder.format(split=base_split))
    if spec.class_mask == "objectnet":
      folders, groups = _objectnet_groups(root)
      src = ImageFolderSource(os.path.join(root, "images"), folders)
    else:
      src = ImageFolderSource(root, spec.class_names)
  indices, label_map = np.arange(len(src)), None
  if split in spec.carved:
    indices = _carve(len(src), split, spec.val_fraction)
  if spec.keep_classes:
    kept = class_list(spec.keep_classes)
    names = _tfds_label_names(spec.tfds_name)
    label_map = np.full(len(names), -1, np.int64)
    for j, c in enumerate(kept):
      label_map[names.index(c)] = j
    labels = source_labels(src)[indices]
    indices = indices[label_map[labels] >= 0]
  if spec.class_mask in ("imagenet_r", "imagenet_a"):
    mask = imagenet_class_mask(spec.class_mask)
    groups = tuple((int(i),) for i in mask)
    label_map = np.full(1000, -1, np.int64)
    label_map[mask] = np.arange(len(mask))
  transform = preprocess.pad_brick_red if spec.transform == "brick_red" else None
  if label_map is not None or transform is not None or len(indices) != len(src):
    src = MappedSource(src, indices, label_map, transform)
  return Dataset(name, split, src, spec.num_classes, groups)


@functools.lru_cache(maxsize=None)
def _tfds_label_names(tfds_name: str) -> list[str]:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return list(tfds.builder(tfds_name).info.features["label"].names)
