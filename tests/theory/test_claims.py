"""Claims C1-C7 of docs/theory.md reproduced at small scale, each over several seeds.

Small scale: d = 64, K_core = K_bg = 16, width 64, fixed set of 400, lr 1e-2, 4,000 steps
(about 20x cheaper than the public script, same phenomena). C1-C5 and C7 are statements of
the theorems, so they run the theorems' idealised network (Section 3.2: no biases,
``model.bias = False``); C6 is about the public script's general setting (both layers and
their biases trained). Margins are chosen so that a
broken implementation (e.g. a background correlated with the label, a wrong activation
derivative, a projection that leaks) fails them.
"""
import numpy as np
import pytest

from tests.helpers import SMALL, merge, run_seeds

SEEDS = (0, 1, 2, 3)
THEORY = merge(SMALL, {"model": {"bias": False}})  # the theorems' network (Section 3.2)


@pytest.fixture(scope="module")
def relu():
  return run_seeds(merge(THEORY, {"model": {"activation": "relu"}}), SEEDS)[0]


@pytest.fixture(scope="module")
def identity():
  return run_seeds(merge(THEORY, {"model": {"activation": "identity"}}), SEEDS)[0]


def test_c1_activation_asymmetry(relu):
  """Thm 4.1 / Fig. 7: ReLU neurons end up positively correlated with at most one class."""
  assert (relu["asym_frac"][:, -1] == 1.0).all()
  assert (relu["asym_frac"][:, 0] < 0.9).all()
  gap = np.abs(relu["act_rate_pos"] - relu["act_rate_neg"])  # [seed, log, neuron]
  assert (gap[:, -1].mean(-1) > gap[:, 0].mean(-1) + 0.2).all()


def test_c2_background_contamination(relu):
  """Thm 4.2 / Fig. 8a: background projections accumulate (with weight decay on)."""
  assert (relu["bg_corr"][:, -1] > 1.5 * relu["bg_corr"][:, 0]).all()
  assert (relu["bg_signed"][:, -1] > 0.05).all()
  assert (np.abs(relu["bg_signed"][:, 0]) < 0.01).all()


def test_c3_small_id_risk_large_ood_risk(relu):
  """Thm 4.3: ReLU reaches small ID risk while the OOD risk stays large."""
  assert (relu["id_risk"][:, -1] < 0.02).all()
  assert (relu["ood_risk"][:, -1] > 0.5).all()
  assert (relu["train_ood_risk"][:, -1] > 25 * relu["train_risk"][:, -1]).all()


def test_c4_linear_networks_do_not_accumulate(identity, relu):
  """Thm 4.4 / Fig. 8b: identity activation: no accumulation, OOD risk ~ ID risk."""
  assert (np.abs(identity["bg_signed"]) < 0.005).all()
  assert (identity["bg_corr"][:, -1] < identity["bg_corr"][:, 0]).all()  # only decays
  assert (np.abs(identity["ood_risk"][:, -1] - identity["id_risk"][:, -1]) < 0.005).all()
  assert (identity["id_risk"][:, -1] < 0.02).all()
  assert (relu["bg_signed"][:, -1] > 10 * np.abs(identity["bg_signed"][:, -1])).all()


def test_c5_regression_split():
  """Fig. 9: MSE distillation to the core coefficients: ReLU contaminates, linear does not."""
  out = {}
  for act in ("relu", "identity"):
    over = merge(THEORY, {"data": {"task": "regression"}, "train": {"loss": "mse"},
                         "model": {"activation": act, "train_output": True,
                                   "output_init": "pytorch"}})
    out[act] = run_seeds(over, (0, 1, 2))[0]
  r, i = out["relu"], out["identity"]
  assert (r["id_mse"][:, -1] < 0.01).all() and (i["id_mse"][:, -1] < 0.01).all()
  assert (r["ood_mse"][:, -1] > 10 * r["id_mse"][:, -1]).all()
  assert (i["ood_mse"][:, -1] < 1.2 * i["id_mse"][:, -1]).all()
  assert (r["bg_signed"][:, -1] > 0.02).all()
  assert (np.abs(i["bg_signed"][:, -1]) < 0.005).all()


def _c6_config(act):
  return merge(SMALL, {"data": {"core": "sphere"},
                       "train": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2,
                                 "loss": "logistic", "steps": 2000},
                       "model": {"activation": act, "train_output": True, "bias": True,
                                 "output_init": "pytorch"}})


C6_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def c6_identity():
  return run_seeds(_c6_config("identity"), C6_SEEDS)[0]


@pytest.mark.parametrize("act", ["gelu", pytest.param("sigmoid", marks=pytest.mark.slow),
                                 pytest.param("tanh", marks=pytest.mark.slow)])
def test_c6_other_activations(act, c6_identity):
  """Fig. 3(d) / 10: sphere core, AdamW, both layers and biases trained: background grows.

  Against the identity-network control of the same setting, which cannot fit the sphere core
  (ID error ~0.5) and whose OOD risk is also above its ID risk (by 0.01-0.44), so the OOD
  assertions are relative to it. Measured over seeds 0-5 (identity / gelu / sigmoid / tanh):
  background growth bg_corr[-1] / bg_corr[0] at most 1.34 / at least 4.97 / 9.8 / 7.07; OOD/ID
  risk ratio 1.01-1.6 / 1.36-3.14 / 4.25-20.5 / 5.09-11.1; mean OOD - ID error -0.004 / 0.076 /
  0.38 / 0.33; ID error 0.49-0.51 / at most 0.131 / 0.222 / 0.202.
  """
  m = run_seeds(_c6_config(act), C6_SEEDS)[0]
  i = c6_identity
  growth = lambda r: r["bg_corr"][:, -1] / r["bg_corr"][:, 0]
  assert (m["bg_corr"][:, -1] > 3 * m["bg_corr"][:, 0]).all()
  assert (growth(m) > 2.5 * growth(i).max()).all(), (growth(m), growth(i))
  assert (m["id_error"][:, -1] < 0.35).all()  # it learned the nonlinear core ...
  assert (m["id_error"][:, -1] < i["id_error"][:, -1].mean() - 0.2).all()  # ... linear did not
  assert (m["ood_risk"][:, -1] > 1.25 * m["id_risk"][:, -1]).all()
  err_gap = lambda r: (r["ood_error"][:, -1] - r["id_error"][:, -1]).mean()
  assert err_gap(m) > err_gap(i) + 0.03, (err_gap(m), err_gap(i))


def test_c7_oracle_projection_removes_contamination(relu):
  """Section 5: projecting every update onto the core subspace removes the OOD gap."""
  m = run_seeds(merge(THEORY, {"train": {"oracle_projection": True}}), SEEDS)[0]
  np.testing.assert_allclose(m["bg_signed"][:, -1], m["bg_signed"][:, 0], atol=1e-6)
  assert (m["id_risk"][:, -1] < 0.02).all()
  assert (m["ood_risk"][:, -1] < 0.1).all()
  assert (m["ood_risk"][:, -1] < 0.2 * relu["ood_risk"][:, -1]).all()
