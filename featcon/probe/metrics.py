"""Accuracy with class masks, the effective-robustness baseline fit, and the Figure 1 scatter.

Effective robustness (Taori et al. 2020): with ``logit(p) = log(p / (1 - p))``, fit
``logit(acc_ood) = a * logit(acc_id) + b`` by least squares on baseline models (standard models
trained on ID data); a model's effective robustness is
``ER = acc_ood - sigmoid(a * logit(acc_id) + b)``, its OOD accuracy above the baseline's
prediction at its ID accuracy.
"""
from __future__ import annotations

import textwrap

from typing import Sequence

import numpy as np

from featcon import io

_EPS = 1e-4


def pool_groups(logits: np.ndarray,
                class_groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
  """Logits in the evaluated set's label space: for each label, the max over its group of
  probe classes (a class mask when every group has one class); unchanged without groups."""
  logits = np.asarray(logits)
  if class_groups is None:
    return logits
  return np.stack([logits[:, list(g)].max(axis=1) for g in class_groups], axis=1)


def accuracy(logits: np.ndarray, labels: np.ndarray,
             class_groups: Sequence[Sequence[int]] | None = None) -> float:
  """Top-1 accuracy. With ``class_groups`` (ImageNet-R/-A masks, ObjectNet), the logit of label
  ``j`` is the max over the probe classes of group ``j`` and only those compete; labels < 0
  (classes outside the mask) count as errors."""
  logits, labels = pool_groups(logits, class_groups), np.asarray(labels)
  if len(labels) == 0:
    return float("nan")
  return float(np.mean(logits.argmax(axis=1) == labels))


def logit(p):
  """``log(p / (1 - p))``, clipped to [1e-4, 1 - 1e-4]."""
  p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
  return np.log(p / (1 - p))


def fit_baseline(acc_id: Sequence[float], acc_ood: Sequence[float]) -> tuple[float, float]:
  """Least-squares ``(a, b)`` of ``logit(acc_ood) = a * logit(acc_id) + b`` (Taori et al. 2020)."""
  x, y = logit(acc_id), logit(acc_ood)
  if len(x) < 2 or np.ptp(x) == 0:
    raise ValueError(f"the baseline fit needs >= 2 models with distinct ID accuracy; got {list(acc_id)}")
  a, b = np.polyfit(x, y, 1)
  return float(a), float(b)


def effective_robustness(acc_id, acc_ood, fit: tuple[float, float]):
  """``acc_ood - sigmoid(a * logit(acc_id) + b)`` (Taori et al. 2020)."""
  a, b = fit
  pred = 1.0 / (1.0 + np.exp(-(a * logit(acc_id) + b)))
  return np.asarray(acc_ood, np.float64) - pred


# Legend entries of the scatter's point groups that need more than their name.
GROUP_LABELS = {
    "baseline": "baseline: standard models trained on ID data\n(their logit fit is the line)",
}


def scatter_plot(points: Sequence[dict], fit: tuple[float, float] | None, path: str,
                 title: str = "", xlabel: str = "ID accuracy", ylabel: str = "OOD accuracy",
                 fit_label: str | None = None):
  """Figure 1: OOD vs ID accuracy on logit-scaled axes, baseline fit as a line.

  ``points``: dicts with ``id``, ``ood``, ``label`` and ``group`` (baseline, teacher, student).
  The line's legend entry is ``fit_label`` or its equation ``logit(OOD) = a logit(ID) + b``.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(9.0, 4.8), layout="constrained")
  styles = {"baseline": ("o", "tab:gray"), "teacher": ("*", "tab:blue"),
            "student": ("s", "tab:orange"), "theory": ("^", "tab:green"),
            "random": ("v", "tab:brown"), "supervised": ("D", "tab:purple"),
            "large_distill": ("P", "tab:red"), "other_student": ("X", "tab:olive"),
            "imagenet": ("*", "tab:cyan"), "second_teacher": ("*", "tab:pink"),
            "second_student": ("s", "tab:pink")}
  done = set()
  for p in points:
    m, c = styles.get(p["group"], ("x", "k"))
    name = GROUP_LABELS.get(p["group"], p["group"])
    ax.scatter(logit(p["id"]), logit(p["ood"]), marker=m, color=c, s=60 if m == "*" else 30,
               label=name if p["group"] not in done else None, zorder=3)
    done.add(p["group"])
  xs = logit([p["id"] for p in points])
  ys = logit([p["ood"] for p in points])
  lo, hi = xs.min() - 0.3, xs.max() + 0.3
  ylo, yhi = ys.min() - 0.3, ys.max() + 0.3  # the y axis fits the points, not the x range
  if fit is not None:
    grid = np.linspace(lo, hi, 50)
    ax.plot(grid, fit[0] * grid + fit[1], color="tab:gray", lw=1,
            label=f"baseline fit: {fit_label or f'logit(OOD) = {fit[0]:.2f} logit(ID) {fit[1]:+.2f}'}")
  if max(lo, ylo) < min(hi, yhi):  # the diagonal where it crosses the plotted region
    d = [max(lo, ylo), min(hi, yhi)]
    ax.plot(d, d, ls=":", color="k", lw=0.8, label="OOD = ID")
  ticks = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99])
  for set_ticks, (a, b) in ((ax.set_xticks, (lo, hi)), (ax.set_yticks, (ylo, yhi))):
    inside, last = [], -np.inf
    for t in ticks:  # ticks at least 1/12 of the axis apart, so that their labels never touch
      if a <= logit(t) <= b and logit(t) - last >= (b - a) / 12:
        inside.append(t)
        last = logit(t)
    set_ticks(logit(np.asarray(inside)), [f"{t:.0%}" for t in inside])
  ax.set_xlim(lo, hi)
  ax.set_ylim(ylo, yhi)
  ax.set_xlabel(xlabel + " (logit scale)")
  ax.set_ylabel(ylabel + " (logit scale)")
  ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=10)
  ax.grid(alpha=0.3)
  fig.legend(loc="outside right upper", fontsize=8, frameon=False)
  return io.save_figure(fig, path)


def macro_f1(logits: np.ndarray, labels: np.ndarray,
             class_groups: Sequence[Sequence[int]] | None = None) -> float:
  """Macro-averaged F1 over the classes present in ``labels`` (iWildCam-WILDS's metric,
  Koh et al. 2021): mean over classes c of 2 TP_c / (2 TP_c + FP_c + FN_c)."""
  pred, labels = pool_groups(logits, class_groups).argmax(axis=1), np.asarray(labels)
  scores = []
  for c in np.unique(labels[labels >= 0]):
    tp = np.sum((pred == c) & (labels == c))
    fp = np.sum((pred == c) & (labels != c))
    fn = np.sum((pred != c) & (labels == c))
    scores.append(2 * tp / max(2 * tp + fp + fn, 1))
  return float(np.mean(scores)) if scores else float("nan")


METRICS = {"accuracy": accuracy, "macro_f1": macro_f1}
