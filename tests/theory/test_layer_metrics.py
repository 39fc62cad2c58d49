"""The per-layer measurements (``metrics.layer_metrics``, docs/theory.md, "Per-layer
measurements") against central finite differences of an independent numpy forward pass, in
float64, on a 3-layer network with biases, ``k_core = 2 != k_bg = 3`` in ``d = 7``, one
spurious coordinate and a masked neuron (so the normalisations, the blocks and the mask all
show in the numbers)."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.theory import metrics, network

KC, KB, KSP, D, M, DEPTH = 2, 3, 1, 7, 5, 3
MASK = np.array([1.0, 1.0, 1.0, 1.0, 0.0])  # the last neuron is padding
NP_ACTS = {"tanh": np.tanh, "relu": lambda u: np.maximum(u, 0.0)}


def _setup(rng, n=12):
  q, r = np.linalg.qr(rng.standard_normal((D, KC + KB)))
  basis = q * np.sign(np.diag(r))
  params = {"W": rng.standard_normal((M, D)), "b": 0.3 * rng.standard_normal(M),
            "a": rng.standard_normal(M), "c": np.float64(0.1)}
  for l in range(2, DEPTH + 1):
    params[f"W_{l}"] = rng.standard_normal((M, M)) / np.sqrt(M)
    params[f"b_{l}"] = 0.3 * rng.standard_normal(M)
  y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
  z = np.concatenate([y[:, None] * rng.random((n, KC)), rng.random((n, KB))], 1)
  z_ood = np.concatenate([z[:, :KC], rng.random((n, KB)) - 1.0], 1)
  return basis, params, z, z_ood


def _hidden(params, basis, z, act):
  """[h_1, ..., h_L] of one input z (numpy, masked neurons 0)."""
  h = act(params["W"] @ (basis @ z) + params["b"]) * MASK
  hs = [h]
  for l in range(2, DEPTH + 1):
    h = act(params[f"W_{l}"] @ h + params[f"b_{l}"]) * MASK
    hs.append(h)
  return hs


def _reference(params, basis, z, z_ood, act, n_sens, eps=1e-6):
  n = z.shape[0]
  live = MASK.sum()
  out = {}
  blocks = {"core": range(KC), "bg": range(KC, KC + KB), "sp": range(KC, KC + KSP)}
  jac = np.zeros((n_sens, DEPTH, M, KC + KB))   # dh_l / dz_j by central differences
  for i in range(n_sens):
    for j in range(KC + KB):
      e = np.zeros(KC + KB)
      e[j] = eps
      up, down = _hidden(params, basis, z[i] + e, act), _hidden(params, basis, z[i] - e, act)
      for l in range(DEPTH):
        jac[i, l, :, j] = (up[l] - down[l]) / (2 * eps)
  hs = np.array([_hidden(params, basis, zi, act) for zi in z])        # (n, L, m)
  hs_ood = np.array([_hidden(params, basis, zi, act) for zi in z_ood])
  for l in range(DEPTH):
    for name, js in blocks.items():
      out[f"sens_{name}_l{l + 1}"] = sum(
          jac[i, l, r, j] ** 2 for i in range(n_sens) for r in range(M) for j in js
      ) / (n_sens * live * len(js))
    half = n // 2
    base = np.mean([np.sum((hs[i, l] - hs[i + half, l]) ** 2) for i in range(half)])
    move = np.mean([np.sum((hs_ood[i, l] - hs[i, l]) ** 2) for i in range(n)])
    out[f"ood_move_l{l + 1}"] = np.sqrt(move / base)
  return out


def _ours(params, basis, z, z_ood, activation, n_shifts=0):
  static = types.SimpleNamespace(k_core=KC, k_spurious=KSP, n_shifts=n_shifts)
  p = {k: jnp.asarray(v) for k, v in params.items()}
  x, x_ood = jnp.asarray(z @ basis.T), jnp.asarray(z_ood @ basis.T)
  pre = network.preactivation(p, x)
  ood_pre = network.preactivation(p, x_ood)
  if n_shifts:
    ood_pre = jnp.stack([ood_pre, pre])   # a second "shift" equal to ID: no movement
  out = metrics.layer_metrics(static, p, jnp.asarray(basis), x, pre, ood_pre,
                              network.activation(activation), jnp.asarray(MASK))
  return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_sensitivity_and_movement_match_finite_differences(activation):
  rng = np.random.default_rng(0)
  basis, params, z, z_ood = _setup(rng)
  with jax.enable_x64(True):
    ours = _ours(params, basis, z, z_ood, activation)
  ref = _reference(params, basis, z, z_ood, NP_ACTS[activation], n_sens=z.shape[0])
  assert set(ours) == set(ref)
  for k, v in ref.items():
    assert v > 0, k
    np.testing.assert_allclose(ours[k], v, rtol=1e-6, err_msg=k)
  # the metric sees depth: the layers differ
  assert len({round(float(ours[f"sens_bg_l{l}"]), 12) for l in (1, 2, 3)}) == 3


def test_sensitivity_uses_the_first_sens_samples(monkeypatch):
  rng = np.random.default_rng(1)
  basis, params, z, z_ood = _setup(rng)
  monkeypatch.setattr(metrics, "SENS_SAMPLES", 5)
  with jax.enable_x64(True):
    ours = _ours(params, basis, z, z_ood, "tanh")
  ref = _reference(params, basis, z, z_ood, np.tanh, n_sens=5)
  for k, v in ref.items():
    np.testing.assert_allclose(ours[k], v, rtol=1e-6, err_msg=k)


def test_movement_per_shift_strength():
  """With a vector of OOD sets (Static.n_shifts), each gets its own movement."""
  rng = np.random.default_rng(2)
  basis, params, z, z_ood = _setup(rng)
  with jax.enable_x64(True):
    one = _ours(params, basis, z, z_ood, "tanh")
    two = _ours(params, basis, z, z_ood, "tanh", n_shifts=2)
  for l in (1, 2, 3):
    np.testing.assert_allclose(two[f"ood_move_l{l}"], [one[f"ood_move_l{l}"], 0.0], rtol=1e-12,
                               atol=1e-12)
    assert f"ood_move_l{l}" in metrics.SHIFT_KEYS
