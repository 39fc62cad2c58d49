"""Grad-CAM (Figure 6) on networks whose answer is known by hand."""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.analysis import gradcam


class Relu(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.relu(x)


class KnownNet(nn.Module):
  """layer1 = ReLU(x) (2 channels); class c's logit = spatial mean of channel c."""

  @nn.compact
  def __call__(self, x, train=False):
    a = Relu(name="layer1")(x)
    inline = nn.relu(x) * 1.0          # an intermediate no submodule returns
    return a.mean((1, 2)), {"layer1": a, "inline": inline + 1.0}


class TokenNet(nn.Module):
  """Tokens (class token + 2×2 grid, 1 channel); logit 0 = mean of the grid tokens."""

  @nn.compact
  def __call__(self, x, train=False):
    t = x.reshape(x.shape[0], -1, 1)
    t = jnp.concatenate([jnp.zeros_like(t[:, :1]), t], axis=1)
    t = Relu(name="block0")(t)
    return t[:, 1:, 0].mean(1, keepdims=True), {"block0": t}


def _two_squares():
  x = np.zeros((1, 8, 8, 2), np.float32)
  x[0, :3, :3, 0] = 1.0      # channel 0: top-left square
  x[0, 5:, 5:, 1] = 2.0      # channel 1: bottom-right square
  return x


@pytest.mark.parametrize("target, corner", [(0, (slice(0, 3), slice(0, 3))),
                                            (1, (slice(5, 8), slice(5, 8)))])
def test_known_answer(target, corner):
  net, x = KnownNet(), _two_squares()
  cam = np.asarray(gradcam.grad_cam(net, {}, x, "layer1", lambda e: e, np.array([target])))[0]
  # α = (1/64) on channel `target`, 0 elsewhere  ⇒  CAM ∝ ReLU(A_target) = its square.
  want = np.zeros((8, 8))
  want[corner] = 1.0
  np.testing.assert_allclose(cam, want, atol=1e-6)
  mask = want.astype(np.float32)
  assert float(gradcam.cam_mass_in_mask(cam[None], mask)[0]) == pytest.approx(1.0)


def _swap(params, emb):
  return emb[:, ::-1] * params["scale"]


def test_traced_score_params_give_the_closure_answer():
  net, x = KnownNet(), _two_squares()
  for target, corner in ((0, (slice(5, 8), slice(5, 8))), (1, (slice(0, 3), slice(0, 3)))):
    traced = np.asarray(gradcam.grad_cam(net, {}, x, "layer1", _swap, np.array([target]),
                                         score_params={"scale": jnp.float32(3.0)}))[0]
    closure = np.asarray(gradcam.grad_cam(net, {}, x, "layer1", lambda e: _swap(
        {"scale": 3.0}, e), np.array([target])))[0]
    want = np.zeros((8, 8))
    want[corner] = 1.0  # class c's score is the other channel's mean
    np.testing.assert_allclose(traced, want, atol=1e-6)
    np.testing.assert_allclose(closure, traced, atol=1e-6)


def test_tokens_drop_class_token_and_form_a_grid():
  x = np.array([[[1.], [0.]], [[0.], [3.]]], np.float32)[None]  # (1, 2, 2, 1)
  cam = np.asarray(gradcam.grad_cam(TokenNet(), {}, x, "block0", lambda e: e, np.array([0])))[0]
  assert cam.shape == (2, 2)
  np.testing.assert_allclose(cam, [[1 / 3, 0], [0, 1]], atol=1e-6)


def test_cam_from_is_relu_of_weighted_sum():
  a = np.ones((1, 2, 2, 2), np.float32)
  a[0, 0, 0] = [2., 0.]
  g = np.zeros_like(a)
  g[..., 0], g[..., 1] = 1.0, -0.5        # α = (1, −0.5)
  cam = np.asarray(gradcam.cam_from(a, g, (2, 2)))[0]
  # weighted sums: (0,0): 2; elsewhere 1 − 0.5 = 0.5; scaled by the max 2
  np.testing.assert_allclose(cam, [[1., .25], [.25, .25]], atol=1e-6)


def test_errors_name_the_layer():
  x = _two_squares()
  with pytest.raises(ValueError, match="layer='nope'.*allowed"):
    gradcam.grad_cam(KnownNet(), {}, x, "nope", lambda e: e, np.array([0]))
  with pytest.raises(ValueError, match="layer='inline'.*no submodule"):
    gradcam.grad_cam(KnownNet(), {}, x, "inline", lambda e: e, np.array([0]))
