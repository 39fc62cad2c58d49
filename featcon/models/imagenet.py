"""ImageNet-1k class names and top-k predictions of a 1000-class classifier by name.

``labels`` is the list of the 1000 ILSVRC-2012 class names in the standard label order (index
``i`` is the ``i``-th synset of ``featcon/data/class_lists/imagenet_wnids.txt``, the sorted WordNet
ids that TFDS, torchvision and timm use): 281 ``tabby``, 282 ``tiger cat``, 285 ``Egyptian cat``,
967 ``espresso``. The names are shipped as ``featcon/models/imagenet_classes.txt`` (one per
line), copied from ``_IMAGENET_CATEGORIES`` in torchvision 0.28.0's
``torchvision/models/_meta.py``: the short common name of each synset, with the two names that
WordNet repeats made unique there (134 ``crane bird`` beside 517 ``crane``, 639 ``maillot tank
suit`` beside 638 ``maillot``). ``tests/models/test_imagenet_labels.py`` checks the file against
that source and every name against the synset's WordNet lemmas shipped by timm.

:func:`top_k` turns logits into named predictions: ``softmax`` probabilities
``p_c = exp(z_c) / sum_j exp(z_j)`` over the class axis, the ``k`` largest in decreasing order
(ties: lower index first).
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

LABELS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")
NUM_CLASSES = 1000


def _read_labels(path: str = LABELS_FILE) -> list[str]:
  """The class names of ``path``, one per line; a file that is not 1000 unique non-empty names
  is refused (a damaged installation)."""
  with open(path, encoding="utf-8") as f:
    names = f.read().splitlines()
  if len(names) != NUM_CLASSES or len(set(names)) != NUM_CLASSES or not all(names):
    raise RuntimeError(f"{path} must hold {NUM_CLASSES} unique non-empty class names, one per "
                       f"line; it holds {len(names)} lines ({len(set(names))} distinct): "
                       "reinstall featcon")
  return names


labels: list[str] = _read_labels()


class Prediction(NamedTuple):
  """One predicted class: its ``index``, its ``label`` (name) and its softmax ``probability``."""
  index: int
  label: str
  probability: float

  def __str__(self):
    return f"{self.label} ({self.index}): {self.probability:.4f}"


def softmax(logits) -> np.ndarray:
  """``p_c = exp(z_c - max z) / sum_j exp(z_j - max z)`` over the last axis, in float64."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def top_k(logits, k: int = 5, names: list[str] | None = None):
  """The ``k`` most probable classes of ``logits`` by name (module docstring).

  Args:
    logits: ``(num_classes,)`` for one image or ``(n, num_classes)`` for a batch.
    k: how many classes, ``1 <= k <= num_classes``.
    names: the class names (default :data:`labels`, the ImageNet-1k names); their number must
      equal the logits' last axis.
  Returns:
    a list of ``k`` :class:`Prediction` for one image, a list of such lists for a batch.
  """
  names = labels if names is None else list(names)
  z = np.asarray(logits)
  if z.ndim not in (1, 2) or z.shape[-1] != len(names):
    raise ValueError(f"logits of shape {z.shape} are not allowed; allowed: ({len(names)},) or "
                     f"(n, {len(names)}), one logit per class name")
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(names):
    raise ValueError(f"k={k!r} is not allowed; allowed: an integer from 1 to {len(names)}")
  p = softmax(z.reshape(-1, z.shape[-1]))
  order = np.argsort(-p, axis=-1, kind="stable")[:, :k]
  out = [[Prediction(int(c), names[c], float(row[c])) for c in idx] for row, idx in zip(p, order)]
  return out[0] if z.ndim == 1 else out
