"""The batched PyTorch baselines of benchmarks/theory_vs_torch.py against the eager loop of the
public script: every variant (input space / feature coordinates, hand-written / autograd
gradients, MKL / oneDNN matmuls, torch.compile) trains the same networks to float rounding."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from benchmarks import torch_theory as tt  # pylint: disable=g-import-not-at-top

SIZES = dict(d=48, k_core=8, k_bg=8, n=100, n_eval=256, width=32)
STEPS, LOG_EVERY, BATCH = 300, 100, 8
CONFIGS = {"fig8": ("relu", "identity"), "online": (5e-3, 2e-2)}
VARIANTS = [v for v in itertools.product(tt.COORDS, tt.GRADS, tt.MATMULS)
            if not (v[1] == "autograd" and v[2] == "onednn")]


def _eager(workload, probs):
  out = {}
  for s, prob in enumerate(probs):
    for j, c in enumerate(CONFIGS[workload]):
      if workload == "fig8":
        out[s, j] = tt.eager_fig8(prob, c, STEPS, log_every=LOG_EVERY)
      else:
        out[s, j] = tt.eager_online(prob, c, STEPS, batch=BATCH, log_every=LOG_EVERY)
  return out


@pytest.fixture(scope="module", params=["fig8", "online"])
def reference(request):
  torch.set_num_threads(1)
  probs = [tt.problem(request.param, s, **SIZES) for s in range(2)]
  return request.param, probs, _eager(request.param, probs)


def _check(workload, probs, ref, batched):
  log = batched.run(STEPS, LOG_EVERY)
  assert len(log) == STEPS // LOG_EVERY
  feature = batched.coords == "feature"
  for (s, j), (risks, W, b) in ref.items():
    got_w, got_b = batched.hidden(s, j)
    want_w = W @ probs[s]["M"] if feature else W   # P = W M on the feature path
    np.testing.assert_allclose(got_w, want_w, rtol=0, atol=2e-5 * float(want_w.abs().max()))
    np.testing.assert_allclose(got_b, b, rtol=0, atol=2e-5 * float(b.abs().max()))
    for li, row in enumerate(risks):
      np.testing.assert_allclose([float(r[s, j]) for r in log[li]], row, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("coords,grads,matmul", VARIANTS, ids=["-".join(v) for v in VARIANTS])
def test_batched_equals_eager_loop(reference, coords, grads, matmul):
  workload, probs, ref = reference
  b = tt.Batched(probs, CONFIGS[workload], coords=coords, grads=grads, matmul=matmul,
                 batch=BATCH, shared_generator=False)
  _check(workload, probs, ref, b)


@pytest.mark.slow
@pytest.mark.parametrize("coords", tt.COORDS)
def test_compiled_step_equals_eager_loop(reference, coords):
  workload, probs, ref = reference
  b = tt.Batched(probs, CONFIGS[workload], coords=coords, grads="hand", compile=True,
                 batch=BATCH, shared_generator=False)
  if b.compile_error:
    pytest.skip(f"torch.compile does not build here: {b.compile_error}")
  _check(workload, probs, ref, b)


def test_training_moves_the_weights(reference):
  """The comparison is not vacuous: the trained weights are far from the initial ones."""
  workload, probs, ref = reference
  for (s, _), (_, W, _) in ref.items():
    assert float((W - probs[s]["W0"]).abs().max()) > 100 * 2e-5 * float(W.abs().max())


def test_bad_variant_is_refused():
  probs = [tt.problem("fig8", 0, **SIZES)]
  with pytest.raises(ValueError, match=r"coords='rows'; allowed"):
    tt.Batched(probs, ("relu",), coords="rows")
  with pytest.raises(ValueError, match="no backward"):
    tt.Batched(probs, ("relu",), grads="autograd", matmul="onednn")
