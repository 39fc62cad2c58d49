"""Mapping OpenAI / open_clip visual state dicts to Flax variables, and loading encoders.

The mapping is numpy-only (see ``docs/clip.md``):

* conv ``weight`` (O, I, kh, kw) -> ``kernel`` transposed (2, 3, 1, 0) (HWIO);
* Linear ``weight`` (out, in) -> ``kernel`` = weight.T; ``bias`` -> ``bias``;
  ``attn.in_proj_weight`` / ``in_proj_bias`` -> ``attn/in_proj`` kernel / bias;
* BatchNorm / LayerNorm ``weight`` -> ``scale``; ``running_mean`` / ``running_var`` ->
  ``batch_stats`` ``mean`` / ``var``; ``num_batches_tracked`` is dropped;
* ``class_embedding``, ``positional_embedding``, ``proj`` are copied as is (``proj`` is a raw
  (width, output_dim) matrix applied as ``x @ proj``);
* a numbered child ``layer1.0`` / ``transformer.resblocks.3`` / ``mlp.c_fc`` becomes the Flax
  module name ``layer1_0`` / ``transformer_resblocks_3`` / ``mlp_c_fc``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from featcon.clip import model as clip_model
from featcon.checkpoints import CheckpointError, read_state_dict

_IGNORED_SUFFIXES = ("num_batches_tracked",)


def visual_state_dict(state_dict: dict) -> dict:
  """The image-tower part of a CLIP state dict, keys without the ``visual.`` prefix.

  Text-tower keys, ``logit_scale`` and the int64 extras are dropped. A dict with no ``visual.``
  key is taken to be a bare image-tower state dict.
  """
  if any(k.startswith("visual.") for k in state_dict):
    return {k[len("visual."):]: v for k, v in state_dict.items() if k.startswith("visual.")}
  return dict(state_dict)


def infer_config(sd: dict, heads: int | None = None):
  """Infer the tower config from a visual state dict, as OpenAI's ``build_model`` does.

  ViT when ``proj`` exists: width / patch from ``conv1.weight``, layers from the number of
  ``in_proj_weight`` keys, resolution from the positional rows, heads = width / 64.
  ResNet otherwise: blocks per stage, width from ``layer1.0.conv1``, resolution =
  32·sqrt(rows - 1) of ``attnpool.positional_embedding``, output dim from ``attnpool.c_proj``.
  """
  try:
    if "proj" in sd:
      width, _, patch, _ = sd["conv1.weight"].shape
      layers = len([k for k in sd if k.endswith(".attn.in_proj_weight")])
      grid = round(math.sqrt(sd["positional_embedding"].shape[0] - 1))
      return clip_model.ViTConfig(patch_size=int(patch), width=int(width), layers=layers,
                                  output_dim=int(sd["proj"].shape[1]),
                                  image_size=int(patch * grid), heads=heads or max(1, width // 64))
    counts = tuple(len({k.split(".")[1] for k in sd if k.startswith(f"layer{b}.")})
                   for b in (1, 2, 3, 4))
    width = int(sd["layer1.0.conv1.weight"].shape[0])
    grid = round(math.sqrt(sd["attnpool.positional_embedding"].shape[0] - 1))
    return clip_model.ResNetConfig(layers=counts, width=width,
                                   output_dim=int(sd["attnpool.c_proj.weight"].shape[0]),
                                   image_size=32 * grid, heads=heads or width * 32 // 64)
  except KeyError as e:
    raise CheckpointError(
        f"cannot infer a CLIP image-tower config: key {e} missing (keys start with: "
        f"{sorted(sd)[:5]})") from e
  except (ValueError, IndexError, TypeError) as e:  # wrong ranks, empty positional embeddings
    raise CheckpointError(f"cannot infer a CLIP image-tower config from the weights' shapes: "
                          f"{e}") from e


def _flax_path(key: str, value: np.ndarray):
  """(collection, path tuple, converted array) for one torch key, or None to ignore."""
  if key.endswith(_IGNORED_SUFFIXES):
    return None
  parent, _, leaf = key.rpartition(".")
  mod = re.sub(r"\.(\d+)", r"_\1", parent)  # layer1.0 -> layer1_0, resblocks.3 -> resblocks_3
  mod = mod.replace("transformer.resblocks_", "transformer_resblocks_")
  mod = mod.replace("mlp.c_fc", "mlp_c_fc").replace("mlp.c_proj", "mlp_c_proj")
  mods = tuple(mod.split(".")) if mod else ()
  if not parent:  # top-level parameters
    return "params", (leaf,), value
  if leaf == "in_proj_weight":
    return "params", mods + ("in_proj", "kernel"), value.T
  if leaf == "in_proj_bias":
    return "params", mods + ("in_proj", "bias"), value
  if leaf == "running_mean":
    return "batch_stats", mods + ("mean",), value
  if leaf == "running_var":
    return "batch_stats", mods + ("var",), value
  if leaf == "weight":
    if value.ndim == 4:
      return "params", mods + ("kernel",), value.transpose(2, 3, 1, 0)
    if value.ndim == 2:
      return "params", mods + ("kernel",), value.T
    return "params", mods + ("scale",), value  # BN / LN
  if leaf == "bias":
    return "params", mods + ("bias",), value
  return "params", mods + (leaf,), value


def _torch_layout(path, shape):
  """A Flax variable shape written in the torch layout of the corresponding state-dict entry."""
  shape = tuple(shape)
  if path[-1] == "kernel" and len(shape) == 4:
    return (shape[3], shape[2], shape[0], shape[1])
  if path[-1] == "kernel" and len(shape) == 2:
    return shape[::-1]
  return shape


def _torch_key(full):
  """Inverse of :func:`_flax_path` for messages: ("params", "layer1_0", "conv1", "kernel") ->
  ``layer1.0.conv1.weight``."""
  col, mods, leaf = full[0], list(full[1:-1]), full[-1]
  if col == "batch_stats":
    leaf = {"mean": "running_mean", "var": "running_var"}[leaf]
  elif mods and mods[-1] == "in_proj":
    mods, leaf = mods[:-1], "in_proj_" + ("weight" if leaf == "kernel" else leaf)
  elif leaf in ("kernel", "scale"):
    leaf = "weight"
  name = ".".join(mods + [leaf])
  name = name.replace("transformer_resblocks_", "transformer.resblocks_")
  name = name.replace("mlp_c_", "mlp.c_")
  return re.sub(r"(layer\d|resblocks|downsample)_(\d+)", r"\1.\2", name)


@functools.lru_cache(maxsize=16)
def _expected_shapes(module) -> dict:
  """{(collection, *path): shape} of ``module``'s variables (abstract init, cached per module)."""
  res = module.image_size
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, res, res, 3))))
  expected = {}
  for col, tree in shapes.items():
    for path, leaf in traverse_util.flatten_dict(dict(tree)).items():
      expected[(col,) + path] = tuple(leaf.shape)
  return expected


def to_flax_variables(sd: dict, module, dtype=np.float32) -> dict:
  """Convert a visual state dict to the variables of ``module``; strict.

  Raises :class:`CheckpointError` listing every missing, unexpected, mis-shaped and non-floating
  key (torch key names) when the state dict does not fit the module: weights must be float16,
  bfloat16 (read as float32), float32 or float64, and are cast to ``dtype``.
  """
  expected = _expected_shapes(module)
  got, source, unexpected, nonfloat, rejected = {}, {}, [], [], set()
  for k, v in sd.items():
    r = _flax_path(k, np.asarray(v))
    if r is None:
      continue
    col, path, arr = r
    full = (col,) + path
    if full not in expected:
      unexpected.append(k)
      continue
    if not np.issubdtype(arr.dtype, np.floating):
      nonfloat.append(f"{k} ({arr.dtype})")
      rejected.add(full)
      continue
    got[full] = arr.astype(dtype)
    source[full] = (k, tuple(np.shape(v)))
  missing = [k for k in expected if k not in got and k not in rejected]
  misshaped = [(source[k][0], source[k][1], _torch_layout(k, expected[k])) for k in got
               if tuple(got[k].shape) != tuple(expected[k])]
  if missing or unexpected or misshaped or nonfloat:
    lines = [f"state dict does not fit {type(module).__name__} ({clip_model.config_of(module)}):"]
    if missing:
      lines.append(f"  missing ({len(missing)}): " + ", ".join(
          _torch_key(k) for k in sorted(missing)))
    if unexpected:
      lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(sorted(unexpected)))
    if misshaped:
      lines.append(f"  mis-shaped ({len(misshaped)}): " + ", ".join(
          f"{k} {s} (expected {e})" for k, s, e in misshaped))
    if nonfloat:
      lines.append(f"  not floating point ({len(nonfloat)}): " + ", ".join(sorted(nonfloat)))
    raise CheckpointError("\n".join(lines))
  variables = {}
  for full, arr in got.items():
    variables.setdefault(full[0], {})[full[1:]] = jnp.asarray(arr)
  return {c: traverse_util.unflatten_dict(t) for c, t in variables.items()}


@dataclasses.dataclass
class Encoder:
  """A CLIP image tower with its weights: ``encoder(images) -> embeddings``.

  ``images`` is a float NHWC batch of preprocessed images ((B, res, res, 3),
  :func:`featcon.clip.preprocess`). ``module`` is the Flax tower, ``variables`` its variables
  (``params`` and, for ResNets, ``batch_stats``), ``config`` its hyperparameters.
  ``encoder.apply(images)`` also returns the intermediates dict.
  """
  module: Any
  variables: dict
  config: Any

  def __post_init__(self):
    self._embed = jax.jit(lambda v, x: self.module.apply(v, x)[0])
    self._apply = jax.jit(lambda v, x: self.module.apply(v, x))

  def __call__(self, images):
    return self._embed(self.variables, jnp.asarray(images))

  def apply(self, images):
    """``(embedding, intermediates)`` in inference mode."""
    return self._apply(self.variables, jnp.asarray(images))


def load(path: str, dtype=jnp.float32, **overrides) -> Encoder:
  """Load a CLIP image encoder from a local checkpoint (no downloads, no code from the file).

  Reads OpenAI's TorchScript ``.pt`` archives, ``torch.save`` state dicts (optionally under
  ``"state_dict"`` and with a ``module.`` prefix) and ``.safetensors`` files with
  :func:`featcon.checkpoints.read_state_dict` (restricted unpickler; torch is not needed or
  imported). The config is inferred from the weights (``overrides``, e.g. ``heads=``, replace
  inferred fields); fp16 weights are upcast to ``dtype``; text-tower keys and int64 extras are
  ignored. A file that does not fit raises :class:`CheckpointError` naming the file and listing
  missing, unexpected, mis-shaped and non-floating keys.
  """
  sd = visual_state_dict(read_state_dict(path))
  try:
    config = infer_config(sd, heads=overrides.pop("heads", None))
    if overrides:
      config = dataclasses.replace(config, **overrides)
    _check_config(config)
    module = clip_model.create_from_config(config, dtype=dtype)
    variables = to_flax_variables(sd, module, dtype=np.dtype(dtype))
  except CheckpointError as e:
    raise CheckpointError(f"{path}: {e}") from e
  except (ValueError, TypeError, ZeroDivisionError, AssertionError) as e:
    # An inferred config the tower constructors or the abstract init reject.
    raise CheckpointError(f"{path}: weights imply an invalid CLIP tower: "
                          f"{type(e).__name__}: {e!s:.300}") from e
  return Encoder(module, variables, config)


_MAX_DIM = 1 << 16


def _check_config(config):
  """Inferred sizes must be positive and plausible before any module is built."""
  for f in dataclasses.fields(config):
    v = getattr(config, f.name)
    vals = v if isinstance(v, tuple) else (v,)
    if any(isinstance(x, int) and not 0 < x <= _MAX_DIM for x in vals if x is not None):
      raise CheckpointError(f"inferred {type(config).__name__}.{f.name}={v} outside "
                            f"[1, {_MAX_DIM}]")
