"""Encoder specs, the featcon.clip tiny models under the analysis contract, checkpoint round trips."""
import jax
import numpy as np
import pytest

from featcon import clip
from featcon.analysis import encoders
from featcon.analysis import gradcam
from featcon.analysis import suite
from featcon import models


def test_parse_spec():
  assert encoders.parse_spec("random:tiny-rn") == ("tiny-rn", None)
  assert encoders.parse_spec("RN50@/x/y.msgpack") == ("RN50", "/x/y.msgpack")
  for bad in ("tiny-rn", "random:", "@p", "a@"):
    with pytest.raises(ValueError, match="encoder spec"):
      encoders.parse_spec(bad)


def test_one_builder_by_name():
  for name in ("tiny-rn", "tiny-vit"):
    a, b = encoders.create(name), clip.create(name)
    assert type(a) is type(b) and clip.config_of(a) == clip.config_of(b)
    assert models.encoder_backend(name) == "featcon.clip"
  assert type(encoders.create("mlp-relu")) is models.mlp.TwoLayerNet
  assert type(encoders.create("small-resnet")).__name__ == "SmallResNet"
  with pytest.raises(ValueError, match="name='tiny-rnn' is unknown; allowed: .*tiny-rn"):
    encoders.create("tiny-rnn")


CONTRACT = {
    "tiny-rn": ({"stem", "layer1", "layer2", "layer3", "layer4", "attnpool"}, "layer4"),
    "tiny-vit": ({"stem", "block0", "block1", "block0_mlp_act", "block1_mlp_act", "pre_pool",
                  "embedding"}, "block1"),
}


@pytest.mark.parametrize("arch", [pytest.param("tiny-rn", marks=pytest.mark.slow), "tiny-vit"])
def test_clip_tiny_models_follow_the_contract(arch):
  """featcon.clip's tiny towers: intermediate names, and Grad-CAM can differentiate through
  every block / stage output (each is the output of a submodule call)."""
  keys, last = CONTRACT[arch]
  enc = encoders.load("x", f"random:{arch}", (32, 32, 3))
  x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  emb, inter = enc.module.apply(enc.variables, x, train=False)
  assert emb.shape == (2, 32) and set(inter) == keys
  assert suite.default_cam_layer(list(inter)) == last
  for layer in [k for k in keys if k.startswith(("layer", "block"))]:
    gradcam.find_producer(enc.module, enc.variables, x, layer, {"train": False})
  shapes = {k: v.shape for k, v in inter.items()}
  layer = suite.default_cam_layer(list(inter), shapes)
  cam = gradcam.grad_cam(enc.module, enc.variables, x, layer, lambda e: e, np.array([0, 1]),
                         {"train": False})
  assert cam.shape == (2, 32, 32) and np.isfinite(np.asarray(cam)).all()
  if arch == "tiny-rn":  # layer4 is 1×1 on 32-px inputs: the default CAM layer is a 4×4 map
    assert shapes["layer4"][1:3] == (1, 1) and layer == "layer2"


@pytest.mark.slow
def test_msgpack_round_trip_and_mismatch(tmp_path):
  a = encoders.load("a", "random:small-resnet", (12, 12, 3), seed=3, overrides={"widths": (4, 8)})
  path = str(tmp_path / "v.msgpack")
  encoders.save(a.variables, path)
  b = encoders.load("b", f"small-resnet@{path}", (12, 12, 3), overrides={"widths": (4, 8)})
  for x, y in zip(jax.tree.leaves(a.variables), jax.tree.leaves(b.variables)):
    np.testing.assert_array_equal(x, y)
  with pytest.raises(ValueError, match="does not match the arch.*shape"):
    encoders.load("c", f"small-resnet@{path}", (12, 12, 3), overrides={"widths": (4, 16)})
  with pytest.raises(ValueError, match="does not exist"):
    encoders.load("d", "small-resnet@/no/such/file", (12, 12, 3))


def test_orbax_directory_round_trip(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  a = encoders.load("a", "random:small-resnet", (12, 12, 3), overrides={"widths": (4, 8)})
  ocp.PyTreeCheckpointer().save(str(tmp_path / "ck"), a.variables)
  b = encoders.load("b", f"small-resnet@{tmp_path / 'ck'}", (12, 12, 3),
                    overrides={"widths": (4, 8)})
  for x, y in zip(jax.tree.leaves(a.variables), jax.tree.leaves(b.variables)):
    np.testing.assert_array_equal(x, y)
