"""Building encoders for the analyses by name, from random init or a saved checkpoint.

Spec strings (config field `encoders`, "label=spec" pairs):
- "random:<arch>"      random initialisation of <arch> (seed from the config);
- "<arch>@<path>"      variables restored from <path>: a `flax.serialization` msgpack file, or an
                       orbax checkpoint directory, matched against the arch's variable shapes.

<arch> is any name `featcon.clip.create` knows ("RN50", "ViT-B/16", "tiny-rn", "tiny-vit", …).
Until the CLIP port is merged, "tiny-rn" and "tiny-vit" fall back to the stand-ins below, and
"small-resnet" is always the CPU-scale network of the padded-digits experiment.
"""
import os
from typing import Dict, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from featcon.analysis import nets


class TinyViTStandIn(nn.Module):
  """Stand-in for "tiny-vit": patch tokens + class token, pre-LN MLP blocks (no attention).

  Intermediates follow the ViT contract: "stem", "block{i}" (B×T×D), "block{i}_mlp_act"
  (post-QuickGELU, B×T×4D), "pre_pool", "embedding".
  """
  patch: int = 4
  width: int = 32
  layers: int = 2
  out_dim: int = 32

  @nn.compact
  def __call__(self, x, train=False):
    del train
    inter = {}
    x = nn.Conv(self.width, (self.patch,) * 2, (self.patch,) * 2, use_bias=False, name="conv1")(x)
    x = x.reshape(x.shape[0], -1, self.width)
    cls = self.param("class_embedding", nn.initializers.normal(0.02), (self.width,))
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], axis=1)
    x = x + self.param("positional_embedding", nn.initializers.normal(0.01), x.shape[1:])
    inter["stem"] = x
    for i in range(self.layers):
      x, act = _MlpBlock(self.width, name=f"block{i}")(x)
      inter[f"block{i}"] = x
      inter[f"block{i}_mlp_act"] = act
    inter["pre_pool"] = x
    emb = nn.Dense(self.out_dim, use_bias=False, name="proj")(nn.LayerNorm(name="ln_post")(x[:, 0]))
    inter["embedding"] = emb
    return emb, inter


class _QuickGELU(nn.Module):

  @nn.compact
  def __call__(self, x):
    return x * jax.nn.sigmoid(1.702 * x)


class _MlpBlock(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    h = nn.Dense(4 * self.width, name="c_fc")(nn.LayerNorm(name="ln_2")(x))
    act = _QuickGELU(name="gelu")(h)
    return x + nn.Dense(self.width, name="c_proj")(act), act


def _stand_in(name):
  if name == "tiny-rn":
    return nets.SmallResNet(widths=(8, 16, 32, 64), blocks=1, out_dim=32)
  if name == "tiny-vit":
    return TinyViTStandIn()
  return None


INPUT_SIZE = {"tiny-rn": 32, "tiny-vit": 32}


def create(name, **overrides):
  """The encoder module called `name`: `featcon.clip.create` when present, else a local one."""
  if name == "small-resnet":
    return nets.SmallResNet(**overrides)
  try:
    from featcon import clip  # pylint: disable=g-import-not-at-top
    return clip.create(name, **overrides)
  except (ImportError, AttributeError):
    pass
  module = _stand_in(name)
  if module is None:
    raise ValueError(f"encoder arch={name!r}: unknown without featcon.clip; allowed here: "
                     "'tiny-rn', 'tiny-vit', 'small-resnet'")
  return module.clone(**overrides) if overrides else module


class Encoder(NamedTuple):
  label: str
  spec: str
  module: nn.Module
  variables: Dict


def parse_spec(spec):
  """'random:<arch>' → (arch, None); '<arch>@<path>' → (arch, path)."""
  if spec.startswith("random:") and len(spec) > 7:
    return spec[7:], None
  if "@" in spec:
    arch, path = spec.split("@", 1)
    if arch and path:
      return arch, path
  raise ValueError(f"encoder spec={spec!r}: use 'random:<arch>' or '<arch>@<checkpoint path>'")


def load(label, spec, input_shape, seed=0, overrides=None):
  """Builds an `Encoder` from a spec; `input_shape` (H, W, C) is used to init the shapes."""
  arch, path = parse_spec(spec)
  module = create(arch, **dict(overrides or {}))
  x0 = jnp.zeros((1, *input_shape), jnp.float32)
  init = lambda: module.init(jax.random.PRNGKey(seed), x0)  # noqa: E731
  if path is None:
    return Encoder(label, spec, module, init())
  template = jax.eval_shape(init)
  if os.path.isdir(path):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    variables = ocp.PyTreeCheckpointer().restore(os.path.abspath(path))
  elif os.path.isfile(path):
    with open(path, "rb") as f:
      variables = flax.serialization.msgpack_restore(f.read())
  else:
    raise ValueError(f"encoder spec={spec!r}: checkpoint path {path!r} does not exist")
  variables = _check_against(template, variables, spec)
  return Encoder(label, spec, module, variables)


def _check_against(template, variables, spec):
  """Restores `variables` into the template's structure; lists every missing or mis-shaped key."""
  flat_t = flax.traverse_util.flatten_dict(flax.core.unfreeze(template), sep="/")
  flat_v = flax.traverse_util.flatten_dict(dict(variables), sep="/")
  problems = [f"missing {k}" for k in flat_t if k not in flat_v]
  problems += [f"unexpected {k}" for k in flat_v if k not in flat_t]
  problems += [f"{k}: shape {tuple(flat_v[k].shape)} != {tuple(flat_t[k].shape)}"
               for k in flat_t if k in flat_v and tuple(flat_v[k].shape) != tuple(flat_t[k].shape)]
  if problems:
    raise ValueError(f"encoder spec={spec!r}: checkpoint does not match the arch: "
                     + "; ".join(problems[:20]))
  return flax.traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat_v.items()}, sep="/")


def save(variables, path):
  """Writes variables as a flax msgpack file (what '<arch>@<path>' reads)."""
  with open(path, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(jax.device_get(flax.core.unfreeze(variables))))
