"""The probes' model selection (Appendix E.1) on constructed validation curves with a known best
point, and the accuracy / F1 / logit definitions against hand computations and scikit-learn."""
import numpy as np
import pytest

from featcon.probe import linear, metrics


def _blobs(seed=0, n=120, d=5, k=3):
  """Separable-ish classes on features with non-zero means and unequal scales (so that folding
  the standardisation into kernel/bias matters)."""
  rng = np.random.default_rng(seed)
  y = np.r_[np.arange(k), rng.integers(0, k, n - k)]
  x = (rng.normal(size=(k, d)) * 2)[y] + rng.normal(size=(n, d))
  return (x * rng.uniform(0.2, 5.0, d) + rng.normal(size=d) * 10).astype(np.float32), y


class _ScriptedAccuracy:
  """Stands in for the ID validation accuracy: returns the scripted curve and records the
  validation logits each evaluation point was scored on."""

  def __init__(self, curve):
    self.curve, self.logits = list(curve), []

  def __call__(self, logits, labels, class_groups=None):
    self.logits.append(np.array(logits, np.float64))
    return self.curve[len(self.logits) - 1]


@pytest.mark.parametrize("curve, best", [((0.5, 0.9, 0.7, 0.6), 2),   # best epoch is not the last
                                         ((0.5, 0.8, 0.8, 0.3), 2),   # a tie: the first one wins
                                         ((0.9, 0.2, 0.3, 0.4), 1)])  # best is the first
def test_probe_returns_the_epoch_with_the_best_validation_accuracy(monkeypatch, curve, best):
  x, y = _blobs()
  acc = _ScriptedAccuracy(curve)
  monkeypatch.setattr(linear, "accuracy", acc)
  p = linear.train_linear_probe(x[:80], y[:80], x[80:], y[80:], 3, lr=3e-2, epochs=4,
                                batch_size=16)
  assert len(acc.logits) == 4
  assert p.selected["epoch"] == best
  assert p.selected["val_accuracy"] == curve[best - 1]
  assert p.selected["val_history"] == list(curve)
  # The returned (standardisation-folded) probe computes the logits that epoch was scored on...
  got = linear.predict(p, x[80:])
  np.testing.assert_allclose(got, acc.logits[best - 1], rtol=1e-4, atol=1e-4)
  # ...and not those of another epoch (the parameters do move between epochs).
  for e, other in enumerate(acc.logits, 1):
    if e != best:
      assert np.max(np.abs(got - other)) > 1e-2, e


def test_probe_selection_on_its_real_validation_accuracy():
  x, y = _blobs(seed=3)
  p = linear.train_linear_probe(x[:80], y[:80], x[80:], y[80:], 3, lr=3e-2, epochs=3,
                                batch_size=16)
  hist = p.selected["val_history"]
  assert p.selected["epoch"] == 1 + int(np.argmax(hist))
  # The accuracy of the returned probe on the validation set, counted by hand.
  pred = linear.predict(p, x[80:]).argmax(1)
  assert p.selected["val_accuracy"] == sum(int(a == b) for a, b in zip(pred, y[80:])) / 40


def _ridge_reference(x, y, k, lam):
  """Normal equations of ridge regression on standardised features and centred +-1 targets."""
  n, d = x.shape
  x = np.asarray(x, np.float64)
  mu, sd = x.mean(0), x.std(0)
  xs = (x - mu) / sd
  t = -np.ones((n, k))
  t[np.arange(n), y] = 1
  w = np.linalg.solve(xs.T @ xs + lam * n * np.eye(d), xs.T @ (t - t.mean(0)))
  return lambda z: ((np.asarray(z, np.float64) - mu) / sd) @ w + t.mean(0)


@pytest.mark.parametrize("curve, best", [((0.6, 0.8, 0.7), 1),
                                         ((0.6, 0.8, 0.8), 1),    # a tie: the first lam wins
                                         ((0.9, 0.8, 0.85), 0)])
def test_ridge_probe_keeps_the_lambda_with_the_best_validation_accuracy(monkeypatch, curve,
                                                                        best):
  x, y = _blobs(seed=1, n=60, d=8)
  lambdas = (1e-3, 1.0, 300.0)
  acc = _ScriptedAccuracy(curve)
  monkeypatch.setattr(linear, "accuracy", acc)
  p = linear.ridge_probe(x[:40], y[:40], x[40:], y[40:], 3, lambdas=lambdas)
  assert p.selected == {"lambda": lambdas[best], "val_accuracy": curve[best]}
  ref = _ridge_reference(x[:40], y[:40], 3, lambdas[best])
  np.testing.assert_allclose(linear.predict(p, x[40:]), ref(x[40:]), rtol=1e-4, atol=1e-4)
  for i, lam in enumerate(lambdas):  # the three solutions are far apart
    if i != best:
      assert np.max(np.abs(ref(x[40:]) - _ridge_reference(x[:40], y[:40], 3, lam)(x[40:]))) > 0.05


def test_accuracy_with_class_groups_by_hand():
  logits = np.array([[0.0, 5.0, 1.0, 0.0],
                     [3.0, 0.0, 0.0, 2.5],
                     [1.0, 1.0, 4.0, 0.0]])
  # no groups: argmax 1, 0, 2
  assert metrics.accuracy(logits, [1, 0, 0]) == pytest.approx(2 / 3)
  # groups {0, 3} and {1, 2}: pooled logits by max [[0, 5], [3, 0], [1, 4]] -> 1, 0, 1
  groups = ((0, 3), (1, 2))
  np.testing.assert_array_equal(metrics.pool_groups(logits, groups), [[0, 5], [3, 0], [1, 4]])
  assert metrics.accuracy(logits, [1, 0, 1], groups) == 1.0
  # a label outside the mask (-1) is an error
  assert metrics.accuracy(logits, [1, -1, 1], groups) == pytest.approx(2 / 3)
  # groups {1} and {3}: only those two logits compete -> 0, 1, 0
  assert metrics.accuracy(logits, [0, 1, 0], ((1,), (3,))) == 1.0


def test_macro_f1_matches_scikit_learn():
  sk = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 5, 200)
  logits = rng.normal(size=(200, 5)) + 1.5 * np.eye(5)[labels]
  pred = logits.argmax(1)
  want = sk.f1_score(labels, pred, average="macro", labels=np.unique(labels))
  assert metrics.macro_f1(logits, labels) == pytest.approx(want, rel=1e-12)
  # hand case: classes 0, 1; pred [0, 0, 1], labels [0, 1, 1]: F1_0 = 2/3, F1_1 = 2/3
  assert metrics.macro_f1(np.eye(2)[[0, 0, 1]], np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_logit_closed_form_and_clipping():
  np.testing.assert_allclose(metrics.logit([0.5, 0.75, 0.1]), [0.0, np.log(3), -np.log(9)],
                             rtol=1e-12)
  # accuracies of 0 and 1 are clipped to [1e-4, 1 - 1e-4]: logit = -+log(9999)
  np.testing.assert_allclose(metrics.logit([0.0, 1.0]), [-np.log(9999), np.log(9999)],
                             rtol=1e-12)


def test_baseline_fit_against_lstsq_and_effective_robustness_of_off_line_points():
  rng = np.random.default_rng(5)
  li = rng.uniform(-1, 2.5, 12)
  lo = 0.8 * li - 0.6 + 0.1 * rng.normal(size=12)     # noisy baseline points
  acc_id, acc_ood = 1 / (1 + np.exp(-li)), 1 / (1 + np.exp(-lo))
  a, b = metrics.fit_baseline(acc_id, acc_ood)
  ref = np.linalg.lstsq(np.c_[li, np.ones_like(li)], lo, rcond=None)[0]
  np.testing.assert_allclose([a, b], ref, rtol=1e-9)
  # models above / below the line: ER = acc_ood - sigmoid(a logit(acc_id) + b), by hand
  pid, pood = np.array([0.6, 0.9]), np.array([0.7, 0.2])
  pred = 1 / (1 + np.exp(-(a * np.log(pid / (1 - pid)) + b)))
  er = metrics.effective_robustness(pid, pood, (a, b))
  np.testing.assert_allclose(er, pood - pred, rtol=1e-12)
  assert er[0] > 0 > er[1]
