"""Parity of the Flax CLIP towers with open_clip (random weights, randomised BN stats / bn3)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # pylint: disable=wrong-import-position

from featcon import clip  # pylint: disable=wrong-import-position
from tests.clip import reference  # pylint: disable=wrong-import-position

TOL32 = 1e-5
TOL64 = 1e-10


def _check(name, batch, seed=0, **overrides):
  cfg = clip.get_config(name, **overrides)
  module = clip.create(name, **overrides)
  m = reference.torch_tower(cfg, seed)
  x = np.random.default_rng(seed).standard_normal(
      (batch, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
  ref_emb, ref_inter = reference.torch_forward(m, x)
  variables = reference.flax_variables(m, module)
  emb, inter = jax.jit(module.apply)(variables, jnp.asarray(x))
  errs = {"embedding": reference.rel_err(emb, ref_emb)}
  assert set(ref_inter) <= set(inter), set(ref_inter) - set(inter)
  for k, v in ref_inter.items():
    assert inter[k].shape == v.shape, (k, inter[k].shape, v.shape)
    errs[k] = reference.rel_err(inter[k], v)
  worst = max(errs, key=errs.get)
  print(name, overrides, "worst", worst, errs[worst])
  assert errs[worst] <= TOL32, errs
  return errs


@pytest.mark.parametrize("name", ["tiny-rn", "tiny-vit"])
def test_tiny_parity_fp32(name, open_clip):
  del open_clip
  _check(name, batch=3)


def test_tiny_variants_parity(open_clip):
  """Odd shapes: several blocks per stage, 64-res ResNet (2x2 pool grid), ViT with 3 heads."""
  del open_clip
  _check("tiny-rn", batch=2, layers=(2, 1, 2, 1), width=8, image_size=64, output_dim=24)
  _check("tiny-vit", batch=2, patch_size=8, width=48, heads=3, layers=3, image_size=40)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["RN50", "RN101", "ViT-B/32", "ViT-B/16"])
def test_full_parity_fp32(name, open_clip):
  del open_clip
  _check(name, batch=2)


# Too slow for the 2-core CI budget: python -m pytest -m heavy tests/clip (docs/testing.md).
@pytest.mark.heavy
@pytest.mark.parametrize("name", ["RN50x4", "RN50x16", "RN50x64", "ViT-L/14", "ViT-L/14@336"])
def test_full_parity_fp32_large(name, open_clip):
  del open_clip
  _check(name, batch=1)


def _count_exact(name):
  cfg = clip.get_config(name)
  x = jax.ShapeDtypeStruct((1, cfg.image_size, cfg.image_size, 3), jnp.float32)
  variables = jax.eval_shape(clip.create(name).init, jax.random.PRNGKey(0), x)
  ours = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(variables["params"]))
  theirs = sum(p.numel() for p in reference.torch_tower(cfg, seed=0).parameters())
  assert ours == theirs, (name, ours, theirs)


@pytest.mark.parametrize("name", ["tiny-rn", "tiny-vit", "RN50", "RN101", "RN50x4", "ViT-B/32",
                                  "ViT-B/16"])
def test_parameter_count_equals_open_clip(name, open_clip):
  """Exactly the trainable parameters of open_clip's tower of the same config."""
  del open_clip
  _count_exact(name)


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["RN50x16", "RN50x64", "ViT-L/14", "ViT-L/14@336"])
def test_parameter_count_equals_open_clip_large(name, open_clip):
  del open_clip
  _count_exact(name)


@pytest.mark.parametrize("name", ["tiny-rn", "tiny-vit"])
def test_parity_fp64(name, open_clip):
  del open_clip
  cfg = clip.get_config(name)
  m = reference.torch_tower(cfg, seed=3, dtype=torch.float64)
  x = np.random.default_rng(3).standard_normal((2, cfg.image_size, cfg.image_size, 3))
  ref_emb, ref_inter = reference.torch_forward(m, x)
  with jax.enable_x64(True):
    module = clip.create(name, dtype=jnp.float64)
    variables = reference.flax_variables(m, module, dtype=np.float64)
    emb, inter = module.apply(variables, jnp.asarray(x))
    assert emb.dtype == jnp.float64
    errs = {k: reference.rel_err(inter[k], v) for k, v in ref_inter.items()}
    errs["embedding"] = reference.rel_err(emb, ref_emb)
  print(name, "fp64 worst", max(errs.values()))
  assert max(errs.values()) <= TOL64, errs


def test_train_mode_batchnorm_matches_torch(open_clip):
  """Training mode: batch statistics, PyTorch momentum 0.1 and unbiased running variance."""
  del open_clip
  cfg = clip.get_config("tiny-rn")
  module = clip.create("tiny-rn")
  m = reference.torch_tower(cfg, seed=5)
  x = np.random.default_rng(5).standard_normal((4, 32, 32, 3)).astype(np.float32)
  variables = reference.flax_variables(m, module)
  m.train()
  with torch.no_grad():
    ref = m(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  (emb, _), updates = module.apply(variables, jnp.asarray(x), train=True, mutable=["batch_stats"])
  assert reference.rel_err(emb, ref) <= TOL32
  new = reference.flax_variables(m, module)["batch_stats"]
  for a, b in zip(jax.tree_util.tree_leaves(updates["batch_stats"]), jax.tree_util.tree_leaves(new)):
    assert reference.rel_err(a, b) <= TOL32


def test_vit_train_mode_call_works():
  module = clip.create("tiny-vit")
  x = jnp.ones((2, 32, 32, 3))
  variables = module.init(jax.random.PRNGKey(0), x)
  assert "batch_stats" not in variables
  (emb, inter), updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
  assert emb.shape == (2, 32) and not updates.get("batch_stats")
  assert inter["embedding"].shape == (2, 32)
