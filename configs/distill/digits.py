"""Offline real-data benchmark (the default config of experiments.distill / linear_probe /
evaluate): real handwritten digits on label-independent backgrounds; grey backgrounds ID,
colour photographs OOD (featcon/data/digits.py).

- Teacher: the tiny CLIP-architecture encoder trained with a linear head (cross-entropy) on
  digits over *all* background kinds (its "diverse pre-training data"), then frozen.
- Student: same architecture, random init, distilled (MSE on the final representation) on ID
  data only; ViT: plus 0.1 x per-block MSE.
- Probes on ID train (AdamW + cosine, best ID val; and ridge), evaluated on ID and OOD tests.

Arguments: ``tiny-rn`` (default), ``tiny-vit``, ``mlp-relu`` / ``mlp-identity`` (the theory's
two-layer student A sigma(W x) on pixels, distilled from the tiny-rn teacher: the
ReLU-vs-identity split of Theorem 4.4), and ``smoke`` (seconds; for tests).

  python -m experiments.distill --config=configs/distill/digits.py:tiny-rn --workdir=runs/digits_rn
  python -m experiments.linear_probe --config=configs/distill/digits.py:tiny-rn --workdir=runs/digits_rn
  python -m experiments.evaluate --config=configs/distill/digits.py:tiny-rn --workdir=runs/digits_rn

About 2-3 minutes for tiny-rn and about 8 for tiny-vit on a 2-core CPU; results in
docs/distillation.md.
"""
from configs.distill.base import base_config, parse_arg

MODELS = ("tiny-rn", "tiny-vit", "mlp-relu", "mlp-identity")


def get_config(arg=None):
  model, smoke = parse_arg(arg, MODELS, "tiny-rn")
  c = base_config()
  c.data.image_size = 32
  c.data.augment = "none"
  c.data.workers = 2
  c.data.digits.copies = 4
  c.data.distill_train = "digits_grey:train"
  c.data.probe_train = "digits_grey:train"
  c.data.probe_val = "digits_grey:val"
  c.data.eval_sets = "digits_grey:test:id,digits_colour:test:ood"
  theory = model.startswith("mlp")
  c.model.teacher = "tiny-rn" if theory else model
  c.model.student = model
  c.teacher.source = "pretrain"
  c.teacher.data = "digits_all:train"
  vit = model == "tiny-vit"
  # The tiny ViT learns the digits much more slowly than the CNN (no convolutional prior): at
  # 600 steps its loss is still at chance, so it pre-trains for 2,000.
  c.teacher.pretrain.update(steps=2000 if vit else 600, batch_size=64,
                            lr=1e-3 if vit else 3e-3, weight_decay=0.05,
                            warmup_steps=100 if vit else 50)
  c.distill.update(steps=600, batch_size=64, lr=1e-3 if vit else 3e-3, weight_decay=0.05,
                   warmup_steps=50, block_weight=0.1 if vit else 0.0,
                   checkpoint_every=200, log_every=50)
  c.probe.update(lr=1e-2, weight_decay=1e-3, batch_size=64, epochs=20, feature_batch_size=256)
  if smoke:
    c.data.digits.copies = 1
    c.teacher.pretrain.update(steps=6, batch_size=8, warmup_steps=2)
    c.distill.update(steps=6, batch_size=8, warmup_steps=2, checkpoint_every=2, log_every=2)
    c.probe.update(epochs=2, batch_size=32)
    c.eval.baseline_fractions = "0.3,1.0"
  return c
