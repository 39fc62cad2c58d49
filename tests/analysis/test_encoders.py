"""Encoder specs, stand-ins and checkpoint round trips."""
import jax
import numpy as np
import pytest

from featcon.analysis import encoders


def test_parse_spec():
  assert encoders.parse_spec("random:tiny-rn") == ("tiny-rn", None)
  assert encoders.parse_spec("RN50@/x/y.msgpack") == ("RN50", "/x/y.msgpack")
  for bad in ("tiny-rn", "random:", "@p", "a@"):
    with pytest.raises(ValueError, match="encoder spec"):
      encoders.parse_spec(bad)


@pytest.mark.parametrize("arch, keys", [("tiny-rn", {"stem", "layer1", "layer4"}),
                                        ("tiny-vit", {"block0", "block1_mlp_act", "embedding"})])
def test_stand_ins_follow_the_contract(arch, keys):
  enc = encoders.load("x", f"random:{arch}", (32, 32, 3))
  emb, inter = enc.module.apply(enc.variables, np.zeros((2, 32, 32, 3), np.float32), train=False)
  assert emb.shape[0] == 2 and keys <= set(inter)


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
