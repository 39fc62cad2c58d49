"""Generate tiny CLIP checkpoints in the layouts ``featcon.clip.load`` reads.

Run ``python -m tests.clip.make_fixtures OUTDIR`` (needs torch 2.13, open_clip 3.3.0). Writes, for a
tiny ModifiedResNet (``rn``) and a tiny ViT (``vit``) full CLIP model (image + text tower, random
weights, randomised BN statistics and ``bn3`` scales):

* ``{rn,vit}_openai.pt``: OpenAI's released layout: a TorchScript archive (``torch.jit.trace_module``
  of forward / encode_image / encode_text), Conv/Linear/attention weights converted to fp16 after
  tracing, plus the int64 scalar buffers ``input_resolution``, ``context_length``, ``vocab_size``;
* ``{rn,vit}_state_dict.pt``: ``torch.save(model.state_dict())`` of the same model (fp16 kept);
* ``{rn,vit}.safetensors``: the visual tower's fp32 state dict (``visual.`` keys);
* ``{rn,vit}_truncated.pt``: the TorchScript archive cut in half;
* ``rn_in_vit.pt``: a state dict whose keys mix both (mismatched architecture).
Sizes: about 0.5–2 MB each.
"""
import os
import sys
import warnings

import numpy as np
import torch

from featcon.testing.clip_reference import randomize_

TINY = {
    # ResNet: heads follow OpenAI's rule width*32/64 (inferred on load); res 32 -> 1x1 final grid.
    "rn": dict(layers=(1, 1, 1, 1), width=16, image_size=32),
    # ViT: OpenAI's rule heads = width / 64, so width 64 -> 1 head; patch 8 -> 4x4 grid.
    "vit": dict(layers=2, width=64, patch_size=8, image_size=32),
}
EMBED_DIM = 32
TEXT = dict(context_length=8, vocab_size=64, width=64, heads=1, layers=1)


def build(kind, seed=0):
  """A tiny open_clip CLIP model (QuickGELU, OpenAI layout) with the int64 extras as buffers."""
  from tests.clip.conftest import import_open_clip  # pylint: disable=import-outside-toplevel
  open_clip = import_open_clip()
  torch.manual_seed(seed)
  model = open_clip.model.CLIP(EMBED_DIM, vision_cfg=dict(TINY[kind]), text_cfg=dict(TEXT),
                               quick_gelu=True)
  randomize_(model, seed + 1)
  extras = dict(input_resolution=TINY[kind]["image_size"], context_length=TEXT["context_length"],
                vocab_size=TEXT["vocab_size"])
  for name, value in extras.items():
    model.__dict__.pop(name, None)  # open_clip keeps some as plain ints; OpenAI has buffers
    model.register_buffer(name, torch.tensor(value))
  return model.eval()


def to_fp16_like_openai(model):
  """OpenAI's ``convert_weights``: Conv/Linear/MHA weights and projections to fp16, rest fp32."""
  def fn(m):
    if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
      m.weight.data = m.weight.data.half()
      if m.bias is not None:
        m.bias.data = m.bias.data.half()
    if isinstance(m, torch.nn.MultiheadAttention):
      for attr in ["in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                   "in_proj_bias", "bias_k", "bias_v"]:
        t = getattr(m, attr)
        if t is not None:
          t.data = t.data.half()
    for name in ["text_projection", "proj"]:
      if hasattr(m, name) and isinstance(getattr(m, name), torch.nn.Parameter):
        getattr(m, name).data = getattr(m, name).data.half()
  model.apply(fn)


def main(out):
  """Write all fixture files into ``out``; returns ``out``."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # TracerWarning / torch.jit deprecation noise
    return _main(out)


def _main(out):
  os.makedirs(out, exist_ok=True)
  for seed, kind in enumerate(["rn", "vit"]):
    model = build(kind, seed=10 * seed)
    res = TINY[kind]["image_size"]
    # fp32 visual tower as safetensors (torch-free format) before the fp16 conversion.
    from safetensors.torch import save_file  # pylint: disable=import-outside-toplevel
    vis = {f"visual.{k}": v.contiguous() for k, v in model.visual.state_dict().items()}
    save_file(vis, os.path.join(out, f"{kind}.safetensors"))
    images = torch.ones(2, 3, res, res)
    text = torch.zeros(2, TEXT["context_length"], dtype=torch.int)
    traced = torch.jit.trace_module(model, dict(forward=(images, text), encode_text=(text,),
                                                encode_image=(images,)))
    to_fp16_like_openai(model)  # parameters are shared with the traced module
    path = os.path.join(out, f"{kind}_openai.pt")
    torch.jit.save(traced, path)
    torch.save(model.state_dict(), os.path.join(out, f"{kind}_state_dict.pt"))
    with open(path, "rb") as f:
      data = f.read()
    with open(os.path.join(out, f"{kind}_truncated.pt"), "wb") as f:
      f.write(data[: len(data) // 2])
  # Mismatched: the RN state dict with one visual key renamed, one dropped, one reshaped.
  sd = torch.load(os.path.join(out, "rn_state_dict.pt"), weights_only=True)
  sd["visual.layer2.0.conv2.weight"] = sd["visual.layer2.0.conv2.weight"][:, :, :1, :1].clone()
  sd["visual.extra.weight"] = sd.pop("visual.layer2.0.bn1.bias")
  del sd["visual.attnpool.q_proj.bias"]
  torch.save(sd, os.path.join(out, "rn_mismatched.pt"))
  return out


if __name__ == "__main__":
  print(main(sys.argv[1] if len(sys.argv) > 1 else "clip_fixtures"))
