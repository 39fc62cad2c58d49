"""Flax CLIP image encoders (Radford et al., 2021) for the deep-network stage.

``create(name)`` builds a tower by name, ``create_resnet`` / ``create_vit`` from hyperparameters,
``load(path)`` reads released checkpoints, ``preprocess`` reproduces CLIP's image transform.
See ``docs/clip.md``. torch is never imported by this package unless a reader is asked to use it.
"""
from featcon.checkpoints import CheckpointError, read_state_dict
from featcon.clip.convert import Encoder, infer_config, load, to_flax_variables, visual_state_dict
from featcon.clip.model import (CONFIGS, ModifiedResNet, ResNetConfig, VisionTransformer,
                                ViTConfig, config_of, create, create_from_config, create_resnet,
                                create_vit, get_config)
from featcon.clip.preprocess import MEAN, STD, preprocess, resize_bicubic

__all__ = [
    "CONFIGS", "CheckpointError", "Encoder", "MEAN", "ModifiedResNet", "ResNetConfig", "STD",
    "ViTConfig", "VisionTransformer", "config_of", "create", "create_from_config",
    "create_resnet", "create_vit", "get_config", "infer_config", "load", "preprocess",
    "read_state_dict", "resize_bicubic", "to_flax_variables", "visual_state_dict",
]
