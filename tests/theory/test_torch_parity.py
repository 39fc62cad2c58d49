"""The jitted loop against an independent eager PyTorch loop (the public script's), 1,000 steps."""
import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import featcon  # noqa: E402
from featcon.theory import config as config_lib  # noqa: E402
from featcon.theory import train as train_lib  # noqa: E402
from tests.theory import torch_reference  # noqa: E402


@pytest.mark.parametrize("activation,loss,path", [("relu", "hinge", "input"),
                                                  ("relu", "hinge", "feature"),
                                                  ("identity", "logistic", "feature")])
def test_matches_pytorch_public_script_loop(activation, loss, path):
  # the public script's loop at half its d, n and width (to keep the suite fast)
  over = {"data": {"d": 128, "n_train": 500}, "model": {"activation": activation, "width": 128},
          "train": {"steps": 1000, "log_every": 100, "loss": loss, "path": path}}
  cfg = config_lib.resolve(over)
  static, dyn = train_lib.from_config(cfg)
  import dataclasses
  prob = jax.device_get(train_lib.make_problem(dataclasses.replace(static, path="input"), dyn))
  w_torch, losses_torch, _ = torch_reference.train(
      prob.train_x, prob.train_y, prob.params0["W"], steps=1000, lr=1e-3, momentum=0.9,
      weight_decay=1e-3, activation=activation, loss=loss, a=prob.params0["a"])
  res = featcon.simulate(over)
  w = res.params["W"]
  rel = np.linalg.norm(w - w_torch) / np.linalg.norm(w_torch - prob.params0["W"])
  assert rel < 1e-3, rel  # relative to how far the weights moved
  np.testing.assert_allclose(w, w_torch, rtol=0, atol=1e-5)
  interval_means = losses_torch.reshape(10, 100).mean(1)
  np.testing.assert_allclose(res.metrics["train_loss"][1:], interval_means, rtol=1e-4)
  assert interval_means[-1] < 0.95 * interval_means[0]  # it trained


def test_matches_pytorch_with_unequal_core_and_background():
  """k_core != k_bg and d a multiple of neither: the feature path against the eager loop."""
  over = {"data": {"d": 90, "k_core": 12, "k_bg": 20, "n_train": 300},
          "model": {"width": 64}, "train": {"steps": 1000, "log_every": 100, "path": "feature"}}
  import dataclasses  # pylint: disable=import-outside-toplevel
  static, dyn = train_lib.from_config(config_lib.resolve(over))
  assert (static.k_core, static.k_bg) == (12, 20)
  prob = jax.device_get(train_lib.make_problem(dataclasses.replace(static, path="input"), dyn))
  w_torch, losses_torch, _ = torch_reference.train(
      prob.train_x, prob.train_y, prob.params0["W"], steps=1000, lr=1e-3, momentum=0.9,
      weight_decay=1e-3, activation="relu", loss="hinge", a=prob.params0["a"])
  res = featcon.simulate(over)
  w = res.params["W"]
  rel = np.linalg.norm(w - w_torch) / np.linalg.norm(w_torch - prob.params0["W"])
  assert rel < 1e-3, rel
  np.testing.assert_allclose(res.metrics["train_loss"][1:], losses_torch.reshape(10, 100).mean(1),
                             rtol=1e-4)
  # the core/background split of the measurements follows k_core on torch's weights too
  P = w_torch @ np.asarray(prob.M)
  np.testing.assert_allclose(res.final["bg_signed"], P[:, 12:].mean(), rtol=1e-3, atol=1e-6)
  np.testing.assert_allclose(res.final["core_corr"], np.linalg.norm(P[:, :12], axis=1).mean(),
                             rtol=1e-4)
