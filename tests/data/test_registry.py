import numpy as np
import pytest

from featcon.probe.metrics import accuracy

# Needs the "data" extras (pip install -e ".[test,data]"); skipped without them.
for _m in ("tensorflow_datasets", "sklearn", "skimage", "PIL"):
  pytest.importorskip(_m)
import tensorflow_datasets as tfds
from featcon.data import REGISTRY, load, registry
from featcon.data.digits import make_digits


def test_unknown_name_and_split_are_clear():
  with pytest.raises(ValueError, match=r"name='imagenett' is unknown; allowed: .*imagenet_r"):
    load("imagenett", "test")
  with pytest.raises(ValueError, match=r"split='train' is not allowed for data set "
                                       r"'imagenet_r'; allowed: test"):
    load("imagenet_r", "train")
  with pytest.raises(ValueError, match="set data_dir"):
    load("pacs_sketch", "test")


def test_imagenet_masks():
  wnids = registry.class_list("imagenet_wnids")
  assert len(wnids) == 1000 and wnids[0] == "n01440764" and len(set(wnids)) == 1000
  for subset in ("imagenet_r", "imagenet_a"):
    mask = registry.imagenet_class_mask(subset)
    assert len(mask) == 200 and np.all(np.diff(mask) > 0) and mask.max() < 1000
  r, a = registry.imagenet_class_mask("imagenet_r"), registry.imagenet_class_mask("imagenet_a")
  assert 1 in r and 0 not in r          # goldfish in ImageNet-R; tench is not
  assert 6 in a and 1 not in a          # stingray in ImageNet-A; goldfish is not
  assert len(set(r) & set(a)) < 200
  with pytest.raises(ValueError, match="subset='imagenet_x'"):
    registry.imagenet_class_mask("imagenet_x")


def test_masked_accuracy_only_counts_kept_classes():
  logits = np.zeros((2, 5))
  logits[0, 4] = 9  # class 4 wins overall but is outside the mask
  logits[0, 1] = 5
  logits[1, 3] = 2
  groups = ((1,), (3,))
  assert accuracy(logits, np.array([0, 1]), groups) == 1.0
  assert accuracy(logits, np.array([1, 3])) == 0.5  # unmasked: class 4 beats class 1


def test_imagenet_r_labels_are_remapped_under_mock():
  with tfds.testing.mock_data(num_examples=8):
    ds = load("imagenet_r", "test")
  mask = registry.imagenet_class_mask("imagenet_r")
  assert ds.num_classes == 1000 and len(ds.class_groups) == 200
  assert ds.class_groups[5] == (int(mask[5]),)
  raw = ds.source.source  # the unmapped TFDS source
  for i in range(len(ds.source)):
    lab = raw[i]["label"]
    expect = int(np.searchsorted(mask, lab)) if lab in mask else -1
    assert ds.source[i]["label"] == expect


def test_domainnet40_subset_and_carved_val_under_mock():
  with tfds.testing.mock_data(num_examples=60):
    test = load("domainnet40_sketch", "test")
    train = load("domainnet40_real", "train")
    val = load("domainnet40_real", "val")
  names = registry._tfds_label_names("domainnet/real")  # pylint: disable=protected-access
  kept = registry.class_list("domainnet40")
  assert len(kept) == 40 and set(kept) <= set(names)
  for ds in (test, train, val):
    assert ds.num_classes == 40
    labels = [ds.source[i]["label"] for i in range(len(ds.source))]
    assert all(0 <= l < 40 for l in labels)
  assert not set(train.source.indices) & set(val.source.indices)


def test_cifar10_red_is_padded_under_mock():
  with tfds.testing.mock_data(num_examples=10):
    ds = load("cifar10_red", "test")
  img = ds.source[0]["image"]
  assert img.shape == (32, 32, 3)
  np.testing.assert_array_equal(img[0, 0], (150, 50, 50))


def test_registry_covers_the_paper():
  for name in ("imagenet", "imagenet_v2", "imagenet_r", "imagenet_a", "imagenet_sketch",
               "objectnet", "domainnet40_sketch", "pacs_sketch", "iwildcam", "camelyon17",
               "cifar10_red", "digits_grey", "digits_colour", "digits_all"):
    assert name in REGISTRY


def test_digits_backgrounds_independent_of_label():
  grey, colour = make_digits("grey", "val"), make_digits("colour", "val")
  np.testing.assert_array_equal(grey.labels, colour.labels)
  assert grey.images.shape[1:] == (32, 32, 3)
  # Grey backgrounds: the green and blue channels are equal away from the red digit.
  assert np.abs(grey.images[:, 0, 0, 1].astype(int) - grey.images[:, 0, 0, 2]).max() == 0
  assert np.abs(colour.images[:, 0, 0, 1].astype(int) - colour.images[:, 0, 0, 2]).max() > 0
  with pytest.raises(ValueError, match="kind='rainbow' is not allowed"):
    make_digits("rainbow", "val")


def test_subset_is_fixed_ordered_and_shared_across_sets():
  """refs.subset keeps ``limit`` examples of a seed-0 permutation in their original order: the
  same indices for any set of the same size; 0 keeps all; a negative limit is refused."""
  from featcon.data import refs  # pylint: disable=g-import-not-at-top
  from featcon.data.sources import ArraySource  # pylint: disable=g-import-not-at-top
  images = np.arange(50, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
  ds = registry.Dataset("toy", "test", ArraySource(images, np.arange(50) % 5), 5)
  sub = refs.subset(ds, 12)
  ids = [int(sub.source[i]["image"][0, 0, 0]) for i in range(len(sub.source))]
  want = np.sort(np.random.default_rng(0).permutation(50)[:12])
  assert ids == want.tolist() and len(set(ids)) == 12
  assert refs.subset(ds, 0) is ds and refs.subset(ds, 50) is ds
  with pytest.raises(ValueError, match="limit=-1"):
    refs.subset(ds, -1)
