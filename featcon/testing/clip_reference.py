"""open_clip reference towers and their named intermediates: what the CLIP parity tests and the
CLIP benchmarks compare ``featcon.clip`` with (needs the ``clip-test`` extra: torch, open_clip).

``import_open_clip()`` works around torchvision 0.28.0's compiled ops failing to load beside the
CPU torch 2.13.0 wheel ("operator torchvision::nms does not exist"): it defines the two missing
operator schemas with ``torch.library`` and re-imports. The CLIP towers use no torchvision op.
"""
import sys

import numpy as np
import torch

from featcon import clip
from featcon.clip import convert
from featcon.clip import model as clip_model

_LIBS = []  # keep torch.library.Library objects alive


def import_open_clip():
  """Import open_clip, defining torchvision::nms/qnms schemas first if its ops fail to load."""
  try:
    import open_clip  # pylint: disable=import-outside-toplevel
    return open_clip
  except RuntimeError as e:
    if "torchvision::" not in str(e):
      raise
  for m in list(sys.modules):
    if m.split(".")[0] in ("torchvision", "open_clip"):
      del sys.modules[m]
  if not _LIBS:
    lib = torch.library.Library("torchvision", "DEF")  # pylint: disable=no-member
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBS.append(lib)
  import open_clip  # pylint: disable=import-outside-toplevel
  return open_clip



def randomize_(model, seed):
  """Randomise BN running stats, BN/LN affine params (incl. zero-init bn3) so no branch is hidden."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
        m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
        m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
        m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
  return model




def torch_tower(config, seed=0, dtype=torch.float32):
  """open_clip ModifiedResNet / VisionTransformer for a featcon config, randomised, eval mode."""
  oc = import_open_clip()
  torch.manual_seed(seed)
  if isinstance(config, clip_model.ResNetConfig):
    m = oc.modified_resnet.ModifiedResNet(
        list(config.layers), config.output_dim, config.heads or config.width // 2,
        image_size=config.image_size, width=config.width)
  else:
    m = oc.transformer.VisionTransformer(
        config.image_size, config.patch_size, config.width, config.layers,
        config.heads or max(1, config.width // 64), config.mlp_ratio,
        output_dim=config.output_dim, act_layer=oc.transformer.QuickGELU)
  randomize_(m, seed + 1)
  return m.to(dtype).eval()


def torch_forward(m, x_nhwc):
  """(embedding, intermediates) of an open_clip tower on an NHWC numpy batch, as numpy (NHWC)."""
  x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
  inter, hooks = {}, []

  def save(name, fn=lambda o: o, inp=False):
    def hook(_mod, args, out):
      inter[name] = fn(args[0] if inp else out).detach().numpy().copy()
    return hook

  nchw = lambda t: t.permute(0, 2, 3, 1)
  if hasattr(m, "attnpool"):
    hooks.append(m.avgpool.register_forward_hook(save("stem", nchw)))
    for i in range(1, 5):
      hooks.append(getattr(m, f"layer{i}").register_forward_hook(save(f"layer{i}", nchw)))
    hooks.append(m.attnpool.register_forward_hook(save("attnpool")))
  else:
    hooks.append(m.conv1.register_forward_hook(
        save("stem", lambda t: t.reshape(t.shape[0], t.shape[1], -1).permute(0, 2, 1))))
    for i, blk in enumerate(m.transformer.resblocks):
      hooks.append(blk.register_forward_hook(save(f"block{i}")))
      hooks.append(blk.mlp.gelu.register_forward_hook(save(f"block{i}_mlp_act")))
    hooks.append(m.ln_post.register_forward_hook(save("pre_pool", inp=True)))
  with torch.no_grad():
    emb = m(x)
  for h in hooks:
    h.remove()
  if not hasattr(m, "attnpool"):
    inter["embedding"] = emb.numpy().copy()
  return emb.numpy().copy(), inter


def flax_variables(m, module, dtype=np.float32):
  """Convert an open_clip tower's state dict to Flax variables of ``module``."""
  sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
  return convert.to_flax_variables(sd, module, dtype=dtype)


def tower_pair(name, batch, seed=0):
  """A randomised open_clip tower for the named config, the Flax module with the same weights,
  and a standard-normal NHWC batch of its image size: ``(torch_model, module, variables, x)``."""
  cfg = clip.get_config(name)
  tm = torch_tower(cfg, seed=seed)
  module = clip.create(name)
  variables = flax_variables(tm, module)
  x = np.random.default_rng(seed).standard_normal(
      (batch, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
  return tm, module, variables, x


def rel_err(a, b):
  """Relative L2 error ||a - b|| / ||b||."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
