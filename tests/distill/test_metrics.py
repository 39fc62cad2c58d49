import numpy as np
import pytest

from featcon.probe import linear, metrics


def _sigmoid(z):
  return 1 / (1 + np.exp(-z))


def test_effective_robustness_matches_hand_computed_fit():
  # Baseline models lie exactly on logit(ood) = 0.5 * logit(id) - 1.
  x = np.array([-1.0, 0.0, 1.0, 2.0])
  acc_id, acc_ood = _sigmoid(x), _sigmoid(0.5 * x - 1)
  a, b = metrics.fit_baseline(acc_id, acc_ood)
  assert a == pytest.approx(0.5, abs=1e-9) and b == pytest.approx(-1.0, abs=1e-9)
  # A model at ID logit 1 (73.11 %) with OOD 50 %: predicted OOD = sigmoid(-0.5) = 37.754 %.
  er = metrics.effective_robustness(_sigmoid(1.0), 0.5, (a, b))
  assert er == pytest.approx(0.5 - 0.3775406687981454, abs=1e-9)
  # Baseline points themselves have zero effective robustness.
  np.testing.assert_allclose(metrics.effective_robustness(acc_id, acc_ood, (a, b)), 0, atol=1e-12)


def test_baseline_fit_least_squares_by_hand():
  # Points (logit id, logit ood): (0, 0), (1, 1), (2, 3): slope 1.5, intercept -1/6.
  acc_id, acc_ood = _sigmoid(np.array([0., 1., 2.])), _sigmoid(np.array([0., 1., 3.]))
  a, b = metrics.fit_baseline(acc_id, acc_ood)
  assert a == pytest.approx(1.5) and b == pytest.approx(-1 / 6)
  with pytest.raises(ValueError, match="distinct ID accuracy"):
    metrics.fit_baseline([0.5, 0.5], [0.3, 0.4])


def test_ridge_matches_normal_equations_primal_and_dual():
  rng = np.random.default_rng(0)
  for n, d in ((50, 5), (6, 20)):  # primal (n >= d) and dual (n < d) branches
    x, y = rng.normal(size=(n, d)), rng.integers(0, 3, n)
    p = linear.ridge_probe(x, y, x, y, 3, lambdas=[0.1])
    xs = (x - x.mean(0)) / (x.std(0) + 1e-6)
    t = -np.ones((n, 3))
    t[np.arange(n), y] = 1
    w = np.linalg.solve(xs.T @ xs + 0.1 * n * np.eye(d), xs.T @ (t - t.mean(0)))
    np.testing.assert_allclose(linear.predict(p, x), xs @ w + t.mean(0), rtol=1e-4, atol=1e-4)


def test_gradient_probe_learns_and_selects_on_val():
  rng = np.random.default_rng(1)
  centers = rng.normal(size=(4, 8)) * 3
  y = rng.integers(0, 4, 400)
  x = centers[y] + rng.normal(size=(400, 8))
  p = linear.train_linear_probe(x[:300], y[:300], x[300:], y[300:], 4, lr=1e-2, epochs=5,
                                batch_size=64)
  assert p.selected["val_accuracy"] > 0.9
  assert p.selected["val_accuracy"] == max(p.selected["val_history"])
  assert metrics.accuracy(linear.predict(p, x[300:]), y[300:]) == p.selected["val_accuracy"]


def test_scatter_plot_writes(tmp_path):
  pts = [{"id": 0.9, "ood": 0.5, "group": "baseline"}, {"id": 0.8, "ood": 0.4, "group": "baseline"},
         {"id": 0.9, "ood": 0.7, "group": "teacher"}, {"id": 0.88, "ood": 0.55, "group": "student"}]
  path = tmp_path / "s.png"
  metrics.scatter_plot(pts, (1.0, -1.0), str(path))
  assert path.stat().st_size > 1000
