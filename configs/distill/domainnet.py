"""Table 4: DomainNet-40 (Tan et al. 2020 subset); ID = Real, Painting, Clipart; OOD = Sketch.

Teacher CLIP-RN50 (Appendix E.4): AdamW lr 3e-4, weight decay 5e-5, batch 32, cosine, 95,000
iterations. Probe: Adam lr 3e-3, weight decay 1e-6, batch 32, cosine, 5,000 iterations, best
training-domain validation. Expected: CLIP-RN50 87.02 ID / 82.58 OOD; distilled 77.91 / 64.78.

  python -m experiments.distill --config=configs/distill/domainnet.py \
      --config.teacher.checkpoint=$CKPT/RN50.pt --config.data.data_dir=$DATA --workdir=$WD
"""
from configs.distill.base import base_config, parse_arg

ID_DOMAINS = ("real", "painting", "clipart")
ID_TRAIN_APPROX = 40_000  # images of the 40 classes in the three ID domains' train splits


def get_config(arg=None):
  model, smoke = parse_arg(arg, ("RN50", "RN101", "ViT-B/32"), "RN50")
  c = base_config()
  c.data.image_size = 224
  c.data.distill_train = ",".join(f"domainnet40_{d}:train" for d in ID_DOMAINS)
  c.data.probe_train = c.data.distill_train
  c.data.probe_val = ",".join(f"domainnet40_{d}:val" for d in ID_DOMAINS)
  c.data.eval_sets = ",".join([f"domainnet40_{d}:test:id" for d in ID_DOMAINS]
                              + ["domainnet40_sketch:test:ood"])
  c.model.teacher = c.model.student = model
  c.teacher.source = "checkpoint"
  c.distill.update(steps=95_000, batch_size=32, lr=3e-4, weight_decay=5e-5, warmup_steps=0,
                   checkpoint_every=2000, log_every=200)
  c.probe.update(optimizer="adam", lr=3e-3, weight_decay=1e-6, batch_size=32,
                 epochs=max(1, round(5000 * 32 / ID_TRAIN_APPROX)))
  c.eval.baseline = "none"
  if smoke:
    c.distill.update(steps=4, batch_size=8, checkpoint_every=2, log_every=1)
  return c
