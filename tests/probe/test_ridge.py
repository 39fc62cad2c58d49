"""The closed-form ridge solver against numpy's least squares and normal equations."""
import numpy as np
import pytest

from featcon.probe import ridge


@pytest.mark.parametrize("n,d", [(60, 7), (7, 30)])  # primal (n >= d) and dual (n < d) branches
def test_weights_match_normal_equations_and_lstsq(n, d):
  rng = np.random.default_rng(n)
  x, y = rng.normal(size=(n, d)), rng.normal(size=(n, 3))
  penalties = [1e-2, 1.0, 50.0]
  for p, w in zip(penalties, ridge.ridge_weights(x, y, penalties), strict=True):
    np.testing.assert_allclose(w, np.linalg.solve(x.T @ x + p * np.eye(d), x.T @ y),
                               rtol=1e-9, atol=1e-12)
    # The ridge problem as an augmented least-squares problem [X; sqrt(p) I] W = [Y; 0].
    aug = np.linalg.lstsq(np.r_[x, np.sqrt(p) * np.eye(d)], np.r_[y, np.zeros((d, 3))],
                          rcond=None)[0]
    np.testing.assert_allclose(w, aug, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("n,d", [(80, 5), (6, 20)])
def test_fit_standardises_centres_and_scales_lambda_by_n(n, d):
  rng = np.random.default_rng(d)
  x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + rng.normal(size=d)
  labels = np.r_[np.arange(3), rng.integers(0, 3, n - 3)]
  fit = ridge.fit_ridge(x, labels, 3, [0.1, 2.0], targets="onehot")
  xs = (x - x.mean(0)) / x.std(0)
  y = np.eye(3)[labels]
  for i, lam in enumerate((0.1, 2.0)):
    # (X^T X / n + lam I)^{-1} X^T Yc / n, solved directly.
    w = np.linalg.solve(xs.T @ xs / n + lam * np.eye(d), xs.T @ (y - y.mean(0)) / n)
    np.testing.assert_allclose(fit.weights[i], w, rtol=1e-8, atol=1e-10)
    kernel, bias = fit.affine(i)
    np.testing.assert_allclose(x @ kernel + bias, xs @ w + y.mean(0), rtol=1e-8, atol=1e-10)


def test_pm1_targets_are_an_affine_copy_with_the_same_argmax():
  rng = np.random.default_rng(4)
  x, labels = rng.normal(size=(40, 6)), rng.integers(0, 4, 40)
  k01, b01 = ridge.fit_ridge(x, labels, 4, [0.3], targets="onehot").affine()
  kpm, bpm = ridge.fit_ridge(x, labels, 4, [0.3], targets="pm1").affine()
  s01, spm = x @ k01 + b01, x @ kpm + bpm
  np.testing.assert_allclose(spm, 2 * s01 - 1, rtol=1e-10, atol=1e-12)
  np.testing.assert_array_equal(spm.argmax(1), s01.argmax(1))


def test_one_hot_codings():
  np.testing.assert_array_equal(ridge.one_hot_targets([2, 0], 3, "pm1"),
                                [[-1, -1, 1], [1, -1, -1]])
  np.testing.assert_array_equal(ridge.one_hot_targets([2, 0], 3, "onehot"),
                                [[0, 0, 1], [1, 0, 0]])


def test_bad_inputs():
  x = np.zeros((4, 2))
  with pytest.raises(ValueError, match="targets='pm2'"):
    ridge.fit_ridge(x, [0, 1, 0, 1], 2, [1.0], targets="pm2")
  with pytest.raises(ValueError, match="num_classes=2"):
    ridge.fit_ridge(x, [0, 1, 2, 1], 2, [1.0])
  with pytest.raises(ValueError, match="lambdas="):
    ridge.fit_ridge(x, [0, 1, 0, 1], 2, [0.0])
  with pytest.raises(ValueError, match=r"x.shape=\(4,\)"):
    ridge.fit_ridge(np.zeros(4), [0, 1, 0, 1], 2, [1.0])
  with pytest.raises(ValueError, match="3 labels for 4"):
    ridge.fit_ridge(x, [0, 1, 0], 2, [1.0])
