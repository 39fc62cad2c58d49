"""Constructors, shapes and the (embedding, intermediates) contract of the Flax towers."""
import jax
import jax.numpy as jnp
import pytest

from featcon import clip

FULL = ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14",
        "ViT-L/14@336"]
# Visual-tower parameter counts of OpenAI's released models (from open_clip), in millions.
PARAMS_M = {"RN50": 38.32, "RN101": 56.26, "RN50x4": 87.14, "RN50x16": 167.33,
            "ViT-B/32": 87.85, "ViT-B/16": 86.19}


@pytest.mark.parametrize("name", FULL)
def test_full_size_shapes(name):
  m = clip.create(name)
  cfg = clip.get_config(name)
  x = jax.ShapeDtypeStruct((2, cfg.image_size, cfg.image_size, 3), jnp.float32)
  variables = jax.eval_shape(m.init, jax.random.PRNGKey(0), x)
  emb, inter = jax.eval_shape(m.apply, variables, x)
  assert emb.shape == (2, cfg.output_dim)
  n = sum(a.size for a in jax.tree_util.tree_leaves(variables["params"]))
  if name in PARAMS_M:
    assert abs(n / 1e6 - PARAMS_M[name]) < 0.01, n
  if isinstance(cfg, clip.ResNetConfig):
    assert set(inter) == {"stem", "layer1", "layer2", "layer3", "layer4", "attnpool"}
  else:
    blocks = {f"block{i}" for i in range(cfg.layers)} | {
        f"block{i}_mlp_act" for i in range(cfg.layers)}
    assert set(inter) == blocks | {"stem", "pre_pool", "embedding"}


def test_create_explicit_and_overrides():
  m = clip.create_resnet(layers=(1, 2, 1, 1), width=8, output_dim=16, image_size=64)
  assert m.heads == 4
  v = clip.create_vit(patch_size=8, width=64, layers=1, output_dim=8, image_size=32)
  assert v.heads == 1
  t = clip.create("tiny-vit", layers=3)
  assert t.layers == 3 and t.heads == 2
  assert clip.config_of(clip.create("tiny-rn")) == clip.get_config("tiny-rn", heads=8)
  with pytest.raises(KeyError):
    clip.create("RN18")


@pytest.mark.parametrize("name", [pytest.param("tiny-rn", marks=pytest.mark.slow), "tiny-vit"])
def test_train_and_eval_modes(name):
  m = clip.create(name)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
  variables = jax.jit(m.init)(jax.random.PRNGKey(0), x)
  emb, inter = jax.jit(m.apply)(variables, x)
  assert emb.shape == (4, 32) and isinstance(inter, dict)
  train = jax.jit(lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"]))
  (emb_t, _), upd = train(variables, x)
  assert emb_t.shape == (4, 32)
  if name == "tiny-rn":
    new = upd["batch_stats"]["bn1"]["mean"]
    assert not jnp.allclose(new, variables["batch_stats"]["bn1"]["mean"])
    # Gradients flow in training mode (students trained from scratch).
    def loss(p):
      (e, _), _ = m.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
      return jnp.sum(e ** 2)
    g = jax.jit(jax.grad(loss))(variables["params"])
    assert all(jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(g))
