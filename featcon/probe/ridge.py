"""Closed-form ridge regression onto one-hot class targets: the one solver behind the ridge
probes (featcon.probe.linear) and the domain / Grad-CAM probes (featcon.analysis.representation).

As in big_vision's few-shot evaluator (``fewshot_lsr``): standardise the features with the
training mean ``mu`` and standard deviation ``s`` (``X = (x - mu) / s``), code the labels as
one-hot targets ``Y`` (``"pm1"``: +1 / -1, ``"onehot"``: 1 / 0), centre them (``Yc = Y - mean(Y)``)
and solve

  ``W(lam) = argmin ||X W - Yc||^2 + n lam ||W||^2 = (X^T X + n lam I)^{-1} X^T Yc``

with ``lam`` relative to the number of examples ``n`` (i.e. ``(X^T X / n + lam I)^{-1} X^T Yc / n``).
When ``n < d`` the equivalent dual form ``W = X^T (X X^T + n lam I)^{-1} Yc`` is used. One
eigendecomposition of the Gram matrix serves every ``lam``. Scores are
``((x - mu) / s) W + mean(Y)``; the bias absorbs the means. The two target codings give the same
argmax (the +-1 scores are ``2 x`` the 1/0 scores minus 1).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

TARGETS = ("pm1", "onehot")


def one_hot_targets(labels, num_classes: int, targets: str = "pm1") -> np.ndarray:
  """(n, num_classes) float64 one-hot targets, coded +1/-1 (``"pm1"``) or 1/0 (``"onehot"``)."""
  if targets not in TARGETS:
    raise ValueError(f"targets={targets!r} is not allowed; allowed: {', '.join(TARGETS)}")
  labels = np.asarray(labels)
  if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
    raise ValueError(f"labels: expected (n,) integers in [0, num_classes={num_classes}), got "
                     f"shape {labels.shape} with range "
                     f"[{labels.min() if labels.size else '-'}, "
                     f"{labels.max() if labels.size else '-'}]")
  y = np.full((labels.shape[0], num_classes), -1.0 if targets == "pm1" else 0.0)
  y[np.arange(labels.shape[0]), labels.astype(np.int64)] = 1.0
  return y


def ridge_weights(x, y, penalties: Sequence[float]) -> list[np.ndarray]:
  """``W = (X^T X + p I)^{-1} X^T Y`` for each absolute penalty ``p`` (no centring, no bias).

  Primal eigendecomposition of ``X^T X`` when ``n >= d``, else the dual ``X^T (X X^T + p I)^{-1} Y``
  from ``X X^T``; both in float64. Returns a list of (d, k) arrays, one per penalty.
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
    raise ValueError(f"x.shape={x.shape}, y.shape={y.shape}: expected (n, d) and (n, k)")
  penalties = [float(p) for p in penalties]
  if not penalties or min(penalties) <= 0:
    raise ValueError(f"penalties={penalties}: need at least one, all > 0")
  n, d = x.shape
  if n >= d:
    evals, evecs = np.linalg.eigh(x.T @ x)
    proj = evecs.T @ (x.T @ y)
    return [evecs @ (proj / (evals + p)[:, None]) for p in penalties]
  evals, evecs = np.linalg.eigh(x @ x.T)
  proj = evecs.T @ y
  return [x.T @ (evecs @ (proj / (evals + p)[:, None])) for p in penalties]


@dataclasses.dataclass(frozen=True)
class RidgeFit:
  """Standardisation, target mean and one weight matrix per ``lam`` (module docstring)."""
  mu: np.ndarray
  scale: np.ndarray
  ybar: np.ndarray
  lambdas: tuple[float, ...]
  weights: tuple[np.ndarray, ...]

  def affine(self, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of the ``i``-th ``lam`` on raw features: ``scores = x @ kernel + bias``."""
    kernel = self.weights[i] / self.scale[:, None]
    return kernel, self.ybar - self.mu @ kernel


def fit_ridge(x, labels, num_classes: int, lambdas: Sequence[float], *,
              targets: str = "pm1", eps: float = 1e-6) -> RidgeFit:
  """Standardises ``x`` (scale ``max(std, eps)``), codes ``labels`` as ``targets`` and solves the
  ridge regression of the module docstring for every ``lam`` in ``lambdas`` (relative to n)."""
  x = np.asarray(x, np.float64)
  if x.ndim != 2 or x.shape[0] < 1:
    raise ValueError(f"x.shape={x.shape}: probe features must be (n, d) with n >= 1")
  y = one_hot_targets(labels, num_classes, targets)
  if y.shape[0] != x.shape[0]:
    raise ValueError(f"labels: {y.shape[0]} labels for {x.shape[0]} feature rows")
  lambdas = tuple(float(l) for l in lambdas)
  if not lambdas or min(lambdas) <= 0:
    raise ValueError(f"lambdas={lambdas}: need at least one, all > 0")
  n = x.shape[0]
  mu = x.mean(0)
  scale = np.maximum(x.std(0), eps)
  ybar = y.mean(0)
  weights = ridge_weights((x - mu) / scale, y - ybar, [lam * n for lam in lambdas])
  return RidgeFit(mu, scale, ybar, lambdas, tuple(weights))
