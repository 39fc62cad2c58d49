"""The training loop: exact feature/input paths, determinism, divergence, results on disk."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import featcon
from featcon.theory import config as config_lib
from featcon.theory import metrics as metrics_lib
from featcon.theory import network
from featcon.theory import program
from featcon.theory import train as theory_train
from tests.helpers import merge
from tests.helpers import params

TINY = {"data": {"d": 48, "k_core": 8, "k_bg": 8, "n_train": 200, "n_eval": 512},
        "model": {"width": 32}, "train": {"steps": 600, "log_every": 200, "lr": 2e-2}}


def _over(**sections):
  return merge(TINY, sections)


@pytest.mark.parametrize("extra", params([
    {"train": {"momentum": 0.0}},
    {"train": {"momentum": 0.9}},
    {"model": {"bias": False}, "train": {"momentum": 0.9}},
    {"train": {"momentum": 0.9, "oracle_projection": True}},
    {"model": {"bias": True, "train_output": True, "output_init": "pytorch", "activation": "tanh"}},
    {"data": {"regime": "online"}, "train": {"batch_size": 16, "lr_schedule": "cosine"}},
    {"data": {"task": "regression"}, "train": {"loss": "mse"}, "model": {"train_output": True, "output_init": "pytorch"}},
    # unequal core and background sizes, d a multiple of neither
    {"data": {"d": 47, "k_core": 5, "k_bg": 11}},
    {"data": {"d": 47, "k_core": 11, "k_bg": 4, "task": "regression"}, "train": {"loss": "mse"},
     "model": {"train_output": True, "output_init": "pytorch"}},
], ids=["sgd", "momentum", "momentum_nobias", "momentum_oracle", "tanh_trained_output",
        "online_cosine", "regression", "unequal_sizes", "unequal_sizes_regression"],
    slow=["momentum_nobias", "momentum_oracle", "tanh_trained_output", "regression",
          "unequal_sizes_regression"]))
def test_feature_and_input_paths_agree(extra):
  """For SGD (with momentum) the K-dimensional path is exact.

  docs/theory.md, "Exact feature-coordinate dynamics".

  The default has the public script's biases (hidden trained, output frozen at its random draw).
  """
  res = {}
  for path in ("feature", "input"):
    sections = {k: dict(v) for k, v in extra.items()}
    sections["train"] = {**sections.get("train", {}), "path": path}
    res[path] = featcon.simulate(_over(**sections))
  f, i = res["feature"], res["input"]
  for k in ("id_risk", "ood_risk", "core_corr", "bg_corr", "bg_signed", "train_loss"):
    np.testing.assert_allclose(f.metrics[k], i.metrics[k], rtol=2e-4, atol=2e-6, err_msg=k)
  for k in f.params:
    scale = np.abs(f.params[k]).max()
    np.testing.assert_allclose(f.params[k], i.params[k], rtol=1e-3, atol=1e-4 * scale, err_msg=k)
  # the metrics really move, so agreement is not trivial
  assert abs(f.metrics["core_corr"][-1] - f.metrics["core_corr"][0]) > 0.01


# Tolerances are relative to each quantity's range over the run. The identity is exact in
# arithmetic; in float32 the two loops drift apart by up to 1e-6 of the range in 600 steps, and
# by up to 6e-4 with weight decay and momentum together (the general loop rewrites every weight
# each step; the feature and input paths of the general loop differ from each other as much).
# Halving the decay in the alpha recursion moves the metrics by 0.4 of their range.
@pytest.mark.parametrize("extra,tol", params([
    ({"train": {"momentum": 0.9}}, 2e-5),
    ({"model": {"bias": False}, "train": {"momentum": 0.9}}, 2e-5),
    ({"model": {"output_bias_init": "zero"}, "train": {"momentum": 0.9, "path": "input"}}, 2e-5),
    ({"train": {"momentum": 0.9, "path": "input", "loss": "logistic", "lr_schedule": "cosine"}},
     2e-5),
    ({"data": {"regime": "online"}, "train": {"batch_size": 16, "momentum": 0.0}}, 2e-5),
    ({"data": {"task": "regression"}, "train": {"loss": "mse"}}, 2e-5),
    ({"model": {"output_init": "pytorch"}, "train": {"weight_decay": 0.01, "momentum": 0.0}}, 2e-5),
    ({"model": {"output_init": "pytorch"}, "train": {"weight_decay": 0.01, "momentum": 0.9}}, 3e-3),
], ids=["momentum", "momentum_nobias", "input_zero_output_bias", "input_logistic_cosine",
        "online", "regression", "decay", "decay_momentum"],
    slow=["momentum_nobias", "input_zero_output_bias", "input_logistic_cosine", "online",
          "regression", "decay"]))
def test_linear_shortcut_equals_general_loop(extra, tol):
  """train.linear_eligible: [W_t | b_t] = alpha_t [W_0 | b_0] + A Q_t reproduces the full loop.

  The default config has biases (the public script's), so most cases cover the augmented form.
  """
  sections = merge({"model": {"activation": "identity"}}, extra)
  c = config_lib.resolve(_over(**sections))
  static, dyn = program.from_config(c)
  assert static.linear
  fast, ffinal = jax.jit(theory_train.make_train(static))(dyn)
  full, gfinal = jax.jit(theory_train.make_train(dataclasses.replace(static, linear=False)))(dyn)
  def close(got, want, name):
    want = np.asarray(want, np.float64)
    scale = float(np.nanmax(np.abs(want), initial=0.0)) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=0, atol=max(tol * scale, 1e-7), err_msg=name)

  for k in full:
    close(fast[k], full[k], k)
  # the weights moved (the check is not vacuous) and agree
  w0 = np.asarray(full["core_corr"])
  assert abs(w0[-1] - w0[0]) > 1e-3
  assert set(ffinal["params"]) == set(gfinal["params"])
  for k in gfinal["params"]:
    close(ffinal["params"][k], gfinal["params"][k], k)
  if c.model.bias:  # the hidden bias moved too
    b0 = theory_train.make_problem(static, dyn).params0["b"]
    assert np.abs(np.asarray(gfinal["params"]["b"]) - np.asarray(b0)).max() > 1e-3
  if static.path == "feature":  # the input path's general loop has no orthogonal part to scale
    assert float(ffinal["perp_scale"]) == pytest.approx(float(gfinal["perp_scale"]), rel=1e-6)


def test_linear_shortcut_only_where_exact():
  for extra in ({"model": {"activation": "relu"}},
                {"model": {"activation": "identity", "train_output": True}},
                {"model": {"activation": "identity"}, "train": {"optimizer": "adam"}},
                {"model": {"activation": "identity"}, "train": {"oracle_projection": True}},
                {"model": {"activation": "identity"}, "train": {"linear_shortcut": False}}):
    static, _ = program.from_config(config_lib.resolve(_over(**extra)))
    assert not static.linear, extra
  with pytest.raises(ValueError, match="train.linear_shortcut"):
    config_lib.resolve(_over(train={"linear_shortcut": "yes"}))


def test_auto_path_choice():
  c = config_lib.resolve(TINY)
  assert program.from_config(c)[0].path == "feature"
  c = config_lib.resolve(_over(train={"optimizer": "adamw"}))
  assert program.from_config(c)[0].path == "input"


def test_oracle_projection_keeps_background_fixed():
  r = featcon.simulate(_over(train={"oracle_projection": True, "path": "input"}))
  p0 = featcon.simulate(_over(train={"steps": 200, "log_every": 200}))
  # background projections only change through the projected update: they stay put exactly
  np.testing.assert_allclose(r.metrics["bg_corr"], r.metrics["bg_corr"][0], rtol=1e-5)
  assert r.metrics["core_corr"][-1] > r.metrics["core_corr"][0] + 0.05
  assert p0.metrics["bg_corr"][0] == r.metrics["bg_corr"][0]


def test_same_seed_bitwise_identical():
  a = featcon.simulate(TINY)
  b = featcon.simulate(TINY)
  for k in a.metrics:
    np.testing.assert_array_equal(a.metrics[k], b.metrics[k])
  c = featcon.simulate({**TINY, "seed": 1})
  assert not np.array_equal(a.metrics["id_risk"], c.metrics["id_risk"])


def test_divergence_is_reported():
  r = featcon.simulate(_over(train={"lr": 1e30, "loss": "logistic"}, model={"activation": "identity"}))
  assert r.diverged_step is not None and 0 <= r.diverged_step < 600
  after = r.metrics["step"] > r.diverged_step
  assert np.isnan(r.metrics["id_risk"][after]).all()
  assert np.isfinite(r.metrics["id_risk"][0])


def test_result_save_load_roundtrip(tmp_path):
  r = featcon.simulate(TINY)
  r.save(str(tmp_path / "res"))
  s = featcon.Result.load(str(tmp_path / "res"))
  assert s.config == r.config and s.final == r.final and s.versions == r.versions
  for k in r.metrics:
    np.testing.assert_array_equal(s.metrics[k], r.metrics[k])
  np.testing.assert_array_equal(s.params["W"], r.params["W"])
  assert set(r.metrics) >= {"step", "id_risk", "ood_risk", "id_error", "ood_error", "core_corr",
                            "bg_corr", "bg_signed", "asym_frac"}
  assert r.metrics["step"].tolist() == [0, 200, 400, 600]


def test_padded_width_and_batch_equal_narrow():
  """A padded (masked) network and batch compute exactly what the narrow ones compute."""
  over = _over(data={"regime": "online"}, train={"batch_size": 12})
  c = config_lib.resolve(over)
  static, dyn = program.from_config(c, return_params=False)
  narrow, _ = jax.jit(theory_train.make_train(static))(dyn)
  padded_static = dataclasses.replace(static, width=48, batch=20, masked=True, batch_padded=True)
  padded, _ = jax.jit(theory_train.make_train(padded_static))(dyn)
  for k in narrow:
    a, b = np.asarray(narrow[k]), np.asarray(padded[k])
    if k in ("act_rate_pos", "act_rate_neg"):
      b = b[:, :32]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("k_core,k_bg", [(3, 9), (9, 3)])
def test_unequal_sizes_reach_every_measurement(k_core, k_bg):
  """With k_core != k_bg the run's shapes and its core/background split follow the config."""
  r = featcon.simulate(_over(data={"d": 29, "k_core": k_core, "k_bg": k_bg, "task": "regression"},
                             train={"loss": "mse", "path": "feature"},
                             model={"train_output": True, "output_init": "pytorch"}))
  assert r.params["W"].shape == (32, 29) and r.params["a"].shape == (32, k_core)
  c = config_lib.resolve(r.config.to_dict())
  static, dyn = program.from_config(c)
  M = np.asarray(theory_train.run_dictionary(static, dyn.seed))
  assert M.shape == (29, k_core + k_bg)
  P = r.params["W"] @ M
  bg = np.linalg.norm(P[:, k_core:], axis=1).mean()
  np.testing.assert_allclose(r.final["bg_corr"], bg, rtol=1e-4)
  np.testing.assert_allclose(r.final["core_corr"], np.linalg.norm(P[:, :k_core], axis=1).mean(),
                             rtol=1e-4)
  np.testing.assert_allclose(r.final["bg_signed"], P[:, k_core:].mean(), rtol=1e-4, atol=1e-7)


def test_step_zero_measures_the_initial_network():
  """Log step 0 is the untrained network, measured here by the same function outside any
  loop; no interval precedes it, so its training loss is NaN."""
  over = _over(data={"regime": "online"}, train={"batch_size": 16})
  static, dyn = program.from_config(config_lib.resolve(over))
  prob = theory_train.make_problem(static, dyn)
  sigma = network.switch_activation(static.activations, static.leaky_slope)
  want = metrics_lib.measure(static, prob, prob.params0, lambda u: sigma(u, dyn.act_index),
                             jnp.ones((static.width,), jnp.float32))
  r = featcon.simulate(over)
  for k in ("id_risk", "ood_risk", "id_error", "core_corr", "bg_corr", "bg_signed", "asym_frac"):
    np.testing.assert_allclose(r.metrics[k][0], want[k], rtol=1e-5, atol=1e-7, err_msg=k)
  assert np.isnan(r.metrics["train_loss"][0]) and np.all(np.isfinite(r.metrics["train_loss"][1:]))
  assert abs(r.metrics["id_risk"][1] - r.metrics["id_risk"][0]) > 1e-3  # step 1 trained
