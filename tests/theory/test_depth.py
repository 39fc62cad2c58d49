"""Deeper networks (``model.depth``, ``model.train_layers``) against independent references.

* an eager PyTorch loop of the same L-layer network (``featcon.testing.theory_reference.Deep``),
  1,000 full-batch SGD steps from featcon's draws, at depth 2 and 3 (as
  ``tests/theory/test_torch_parity.py`` does for depth 1);
* exact identities: padded vs narrow width at depth 2, frozen layers 2..L under
  ``train_layers="first"``, the linear shortcut never taken at depth > 1;
* the init of layers 2..L: prefix-consistent in both dimensions, PyTorch's scale.

Depth 1 is the two-layer network exactly: ``results.csv`` of ``configs/theory.py:default`` and
``:smoke`` are byte-identical with and without the depth code paths (docs/beyond.md), and every
depth-1 test of ``tests/theory/`` runs unchanged.
"""
import dataclasses

import jax
import numpy as np
import pytest

import featcon
from featcon.theory import config as config_lib
from featcon.theory import network
from featcon.theory import program
from featcon.theory import train as theory_train

torch = pytest.importorskip("torch")
from featcon.testing import theory_reference as torch_reference  # noqa: E402


def _small(depth, **model):
  return {"data": {"d": 48, "k_core": 8, "k_bg": 12, "n_train": 200},
          "model": {"width": 24, "depth": depth, **model},
          "train": {"steps": 1000, "log_every": 100, "lr": 1e-2}}


@pytest.mark.parametrize("depth,activation,train_layers,bias", [
    (2, "relu", "all", True),        # the public script's layers, two hidden layers
    pytest.param(3, "relu", "first", True,     # layers 2..3 frozen at init
                 marks=pytest.mark.slow),
    pytest.param(3, "identity", "all", False,  # a deep linear network (no rank-one shortcut)
                 marks=pytest.mark.slow),
])
def test_deep_network_matches_pytorch_loop(depth, activation, train_layers, bias):
  over = _small(depth, activation=activation, train_layers=train_layers, bias=bias)
  cfg = config_lib.resolve(over)
  static, dyn = program.from_config(cfg)
  assert static.path == "feature" and not static.linear and static.depth == depth
  prob = jax.device_get(theory_train.make_problem(dataclasses.replace(static, path="input"), dyn))
  p0 = {k: np.asarray(v) for k, v in prob.params0.items()}
  assert sorted(k for k in p0 if k.startswith("W_")) == [f"W_{l}" for l in range(2, depth + 1)]
  ref, losses_torch = torch_reference.deep_train(
      prob.train_x, prob.train_y, p0, depth=depth, steps=1000, lr=cfg.train.lr,
      momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay, activation=activation,
      loss=cfg.train.loss, train_layers=train_layers)
  res = featcon.simulate(over, progress=False)
  for k in ref:
    moved = np.linalg.norm(ref[k] - p0[k])
    if k in ("a", "c") or (train_layers == "first" and k[1:2] == "_"):
      assert moved == 0, k                                   # frozen in the reference ...
      # ... and in featcon (up to the rounding of the init's scale in another program)
      np.testing.assert_allclose(res.params[k], p0[k], rtol=1e-6, atol=0, err_msg=k)
      continue
    assert moved > 0, k
    rel = np.linalg.norm(res.params[k] - ref[k]) / moved
    assert rel < 2e-3, (k, rel)  # relative to how far the weights moved
  interval_means = losses_torch.reshape(10, 100).mean(1)
  np.testing.assert_allclose(res.metrics["train_loss"][1:], interval_means, rtol=1e-3, atol=1e-6)
  assert interval_means[-1] < 0.97 * interval_means[0]  # it trained


def test_padded_width_equals_narrow_at_depth_2():
  """A width-16 network padded to 40 neurons in every hidden layer computes the narrow one."""
  over = _small(2, width=16)
  over["train"] = {"steps": 40, "log_every": 20, "layer_metrics": True}
  static, dyn = program.from_config(config_lib.resolve(over), return_params=False)
  narrow, _ = jax.jit(theory_train.make_train(static))(dyn)
  padded, _ = jax.jit(theory_train.make_train(
      dataclasses.replace(static, width=40, masked=True)))(dyn)
  assert "sens_bg_l2" in narrow and "ood_move_l2" in narrow
  for k in narrow:
    a, b = np.asarray(narrow[k]), np.asarray(padded[k])
    if k in ("act_rate_pos", "act_rate_neg"):
      b = b[:, :16]
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7, err_msg=k)


def test_deeper_layer_init_is_prefix_consistent_with_pytorch_scale():
  key = jax.random.PRNGKey(3)
  w8, b8 = network.deeper_layer(key, m=8, width=8)
  w20, b20 = network.deeper_layer(key, m=20, width=8)
  np.testing.assert_array_equal(np.asarray(w8), np.asarray(w20)[:8, :8])
  np.testing.assert_array_equal(np.asarray(b8), np.asarray(b20)[:8])
  w, b = network.deeper_layer(key, m=400, width=400, init_scale=2.0)
  k = 2.0 / np.sqrt(400)
  assert np.abs(w).max() <= k and np.abs(b).max() <= k
  np.testing.assert_allclose(np.var(np.asarray(w)), k ** 2 / 3, rtol=0.02)  # U(-k, k)
  g, gb = network.deeper_layer(key, m=400, width=400, init="gaussian")
  np.testing.assert_allclose(np.std(np.asarray(g)), 1 / 20, rtol=0.02)
  assert not np.any(np.asarray(gb))
  # layer 1 and the output layer are the same draws at every depth
  p1 = network.init(key, m=8, d_in=5, fan_in=5, bias=True)
  p3 = network.init(key, m=8, d_in=5, fan_in=5, bias=True, depth=3)
  assert set(p3) - set(p1) == {"W_2", "b_2", "W_3", "b_3"}
  for k in p1:
    np.testing.assert_array_equal(np.asarray(p1[k]), np.asarray(p3[k]))
  assert not np.array_equal(np.asarray(p3["W_2"]), np.asarray(p3["W_3"]))
  # network.init gives layers 2..L the fan-in of the actual width (not d), padded or not
  wide = network.init(key, m=512, d_in=5, fan_in=5, width=400, depth=2, bias=True)
  w2 = np.asarray(wide["W_2"])[:400, :400]
  assert np.abs(w2).max() <= 1 / 20 and np.abs(np.asarray(wide["b_2"])).max() <= 1 / 20
  np.testing.assert_allclose(np.var(w2), 1 / (3 * 400), rtol=0.02)


def test_depth_changes_the_program_and_disables_the_linear_shortcut():
  s1, _ = program.from_config(config_lib.resolve({"model": {"activation": "identity"}}))
  s2, _ = program.from_config(config_lib.resolve({"model": {"activation": "identity",
                                                            "depth": 2}}))
  assert s1.linear and not s2.linear
  assert dataclasses.replace(s2, depth=1, linear=True) == s1
  b1, b2 = program.bytes_per_config(s1), program.bytes_per_config(s2)
  assert b2 > b1  # the memory estimate counts layer 2


@pytest.mark.parametrize("over,field", [
    ({"model": {"depth": 0}}, "model.depth"),
    ({"model": {"depth": network.MAX_DEPTH + 1}}, "model.depth"),
    ({"model": {"depth": 2.0}}, "model.depth"),
    ({"model": {"train_layers": "last"}}, "model.train_layers"),
    ({"data": {"bg_label_corr": 0.2}}, "data.bg_label_corr"),          # k_spurious = 0
    ({"data": {"bg_label_corr": 1.5, "k_spurious": 2}}, "data.bg_label_corr"),
    ({"data": {"k_spurious": 33}}, "data.k_spurious"),                 # > k_bg = 32
    ({"train": {"layer_metrics": 1}}, "train.layer_metrics"),
])
def test_bad_values_are_refused_naming_the_field(over, field):
  with pytest.raises(ValueError, match=f"config field '{field}' has value"):
    config_lib.resolve(over)


def test_sweep_over_depth_writes_every_layer(tmp_path):
  """A sweep mixing depths 1 and 2 (two compiled programs): the tidy table has the deeper
  layer's columns (NaN for the shallower network), the trajectories keep them, the depth
  figures are written, and the sweep's depth-2 run is the single simulation's."""
  base = {"data": {"d": 16, "k_core": 3, "k_bg": 5, "n_train": 32, "n_eval": 64,
                   "k_spurious": 2, "bg_label_corr": 0.5},
          "model": {"width": 6, "activation": "tanh"},
          "train": {"steps": 20, "log_every": 10, "layer_metrics": True},
          "sweep": {"progress": False}}
  cfg = {**base, "model": {**base["model"], "depth": [1, 2]}}
  df = featcon.sweep(cfg, workdir=str(tmp_path))
  last = df[df["step"] == 20].set_index("depth")
  assert np.isnan(last.loc[1, "sens_bg_l2"]) and np.isfinite(last.loc[2, "sens_bg_l2"])
  for k in ("sens_core_l1", "sens_bg_l1", "sens_sp_l1", "ood_move_l1", "sp_align",
            "bg_signed_clean"):
    assert np.isfinite(last[k]).all(), k
  with np.load(tmp_path / "trajectories.npz") as z:
    move2 = z["metrics/ood_move_l2"]
    np.testing.assert_array_equal(z["swept/model.depth"], [1, 2])
  assert np.isnan(move2[0]).all() and np.isfinite(move2[1]).all()
  for f in ("by_depth.png", "layers.png", "results.csv", "summary.md"):
    assert (tmp_path / f).exists(), f
  single = {k: v for k, v in base.items() if k != "sweep"}
  one = featcon.simulate({**single, "model": {**base["model"], "depth": 2}}, progress=False)
  for k in ("id_risk", "ood_move_l2", "sens_bg_l2"):
    np.testing.assert_allclose(last.loc[2, k], one.final[k], rtol=1e-5, err_msg=k)
