"""CIFAR-10 with the paper's brick-red padding (Appendix F.4) as the OOD shift, TFDS-backed.

Teacher: tiny encoder trained with a linear head on red-padded CIFAR-10 (it has seen the
shift); student distilled on plain CIFAR-10 only; probes on plain CIFAR-10; OOD = red-padded
test set. Needs ``tfds build cifar10 --file_format=array_record`` (or tfds.testing.mock_data,
as in tests/distill/test_e2e.py). Arguments: ``tiny-rn`` | ``tiny-vit`` [,smoke].

  python -m experiments.distill --config=configs/distill/cifar10_red.py:tiny-rn --workdir=runs/c10
"""
from configs.distill import digits
from configs.distill.base import parse_arg


def get_config(arg=None):
  model, smoke = parse_arg(arg, ("tiny-rn", "tiny-vit"), "tiny-rn")
  c = digits.get_config(",".join([model] + (["smoke"] if smoke else [])))
  c.data.augment = "crop_flip"
  c.data.distill_train = "cifar10:train"
  c.data.probe_train = "cifar10:train"
  c.data.probe_val = "cifar10:val"
  c.data.eval_sets = "cifar10:test:id,cifar10_red:test:ood"
  c.teacher.data = "cifar10_red:train"
  if not smoke:
    c.teacher.pretrain.steps = 5000
    c.distill.steps = 5000
  return c
