"""One distillation step (featcon/distill/student.py, Section 2) against PyTorch: the teacher in
eval mode (running statistics), the student in train mode (batch statistics, running statistics
updated), the objective final MSE + block_weight x block MSE, its gradient and the update; and
the attention initialisation from the teacher (Appendix E)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from featcon import training as train_lib
from featcon import layers
from featcon.distill import student

torch = pytest.importorskip("torch")
F = torch.nn.functional

T_MEAN = np.array([0.5, -1.0, 2.0], np.float32)
T_VAR = np.array([4.0, 0.5, 9.0], np.float32)
T_SCALE = np.array([1.5, -0.5, 1.0], np.float32)
T_BIAS = np.array([0.2, 0.0, -0.4], np.float32)


class Teacher(nn.Module):
  """block0 = BN(x) (N, 2, 2, 3); embedding = 2 x its spatial mean."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    b = layers.BatchNorm(name="bn")(x, train)
    return 2.0 * b.mean((1, 2)), {"block0": b, "stem": x}


class Student(nn.Module):
  """block0 = x W (1 x 1 conv, no bias); embedding = BN(spatial mean of block0)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    b = nn.Dense(3, use_bias=False, name="proj")(x)
    return layers.BatchNorm(name="bn")(b.mean((1, 2)), train), {"block0": b, "stem": x * 0}


def _torch_step(x, w, s_scale, s_bias, s_mean, s_var, t_emb, t_block, block_weight, lr):
  xt = torch.tensor(x, dtype=torch.float64)
  w = torch.tensor(w, dtype=torch.float64, requires_grad=True)
  sc = torch.tensor(s_scale, dtype=torch.float64, requires_grad=True)
  bi = torch.tensor(s_bias, dtype=torch.float64, requires_grad=True)
  rm, rv = torch.tensor(s_mean, dtype=torch.float64), torch.tensor(s_var, dtype=torch.float64)
  block = torch.einsum("nhwc,cd->nhwd", xt, w)
  emb = F.batch_norm(block.mean((1, 2)), rm, rv, sc, bi, training=True, momentum=0.1,
                     eps=layers.BN_EPS)  # updates rm, rv in place
  final = F.mse_loss(emb, torch.tensor(t_emb, dtype=torch.float64))
  loss = final + block_weight * F.mse_loss(block, torch.tensor(t_block, dtype=torch.float64))
  loss.backward()
  with torch.no_grad():
    new = {"w": (w - lr * w.grad).numpy(), "scale": (sc - lr * sc.grad).numpy(),
           "bias": (bi - lr * bi.grad).numpy()}
  return float(loss.detach()), float(final.detach()), new, rm.numpy(), rv.numpy()


@pytest.mark.parametrize("block_weight", [0.0, 0.5])
def test_distill_step_matches_pytorch(block_weight):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(6, 2, 2, 3)).astype(np.float32) * 2 + 1
  teacher, stu = Teacher(), Student()
  tvars = {"params": {"bn": {"scale": jnp.asarray(T_SCALE), "bias": jnp.asarray(T_BIAS)}},
           "batch_stats": {"bn": {"mean": jnp.asarray(T_MEAN), "var": jnp.asarray(T_VAR)}}}
  svars = stu.init(jax.random.key(0), jnp.asarray(x))
  w = np.asarray(svars["params"]["proj"]["kernel"])
  s_scale, s_bias = np.array([1.2, 0.8, 1.0], np.float32), np.array([0.1, -0.1, 0.3], np.float32)
  s_mean, s_var = np.array([0.3, 0.1, -0.2], np.float32), np.array([2.0, 0.5, 1.0], np.float32)
  params = {"proj": {"kernel": jnp.asarray(w)},
            "bn": {"scale": jnp.asarray(s_scale), "bias": jnp.asarray(s_bias)}}
  bstats = {"bn": {"mean": jnp.asarray(s_mean), "var": jnp.asarray(s_var)}}
  lr = 0.1
  tx = optax.sgd(lr)
  step = jax.jit(student.distill_step(teacher, stu, tx, block_weight))
  state, m = step(train_lib.new_state(params, bstats, tx), {"image": jnp.asarray(x)}, tvars)

  # The teacher in eval mode, by hand: running statistics, not the batch's.
  t_block = (x.astype(np.float64) - T_MEAN) / np.sqrt(T_VAR + layers.BN_EPS) * T_SCALE + T_BIAS
  t_emb = 2.0 * t_block.mean((1, 2))
  loss, final, new, rm, rv = _torch_step(x, w, s_scale, s_bias, s_mean, s_var, t_emb, t_block,
                                         block_weight, lr)
  assert float(m["mse_final"]) == pytest.approx(final, rel=1e-5)
  assert float(m["loss"]) == pytest.approx(loss, rel=1e-5)
  assert (float(m["loss"]) > 1.05 * float(m["mse_final"])) == (block_weight > 0)
  p = state["params"]
  np.testing.assert_allclose(p["proj"]["kernel"], new["w"], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(p["bn"]["scale"], new["scale"], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(p["bn"]["bias"], new["bias"], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(state["batch_stats"]["bn"]["mean"], rm, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state["batch_stats"]["bn"]["var"], rv, rtol=1e-5, atol=1e-6)
  assert int(state["step"]) == 1


def test_init_attention_copies_exactly_the_attention_parameters():
  s = {"block0": {"attn": {"in_proj": np.zeros(3), "out_proj": np.zeros(2)},
                  "mlp": {"c_fc": np.zeros(4)}},
       "attnpool": {"q_proj": np.zeros(2)}, "ln_post": {"scale": np.zeros(3)},
       "extra_attn": {"w": np.zeros(1)}}  # attention, but absent from the teacher: kept
  t = {"block0": {"attn": {"in_proj": np.full(3, 1.), "out_proj": np.full(2, 2.)},
                  "mlp": {"c_fc": np.full(4, 3.)}},
       "attnpool": {"q_proj": np.full(2, 4.)}, "ln_post": {"scale": np.full(3, 5.)}}
  got = student.init_attention_from_teacher(s, t)
  np.testing.assert_array_equal(got["block0"]["attn"]["in_proj"], 1.0)
  np.testing.assert_array_equal(got["block0"]["attn"]["out_proj"], 2.0)
  np.testing.assert_array_equal(got["attnpool"]["q_proj"], 4.0)
  np.testing.assert_array_equal(got["block0"]["mlp"]["c_fc"], 0.0)
  np.testing.assert_array_equal(got["ln_post"]["scale"], 0.0)
  np.testing.assert_array_equal(got["extra_attn"]["w"], 0.0)
