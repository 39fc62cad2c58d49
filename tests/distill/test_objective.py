"""The distillation objective (Section 2, Appendix E.1) against a hand computation, and a short
run that moves the student towards the teacher on held-out images."""
import numpy as np
import pytest

from featcon.distill import student


def _hand_loss(s_emb, s_inter, t_emb, t_inter, w):
  """mean_{b,k} (s_bk - t_bk)^2 + w * sum over blocks of the per-block mean squared error."""
  final = sum((s - t) ** 2 for s, t in zip(s_emb.ravel(), t_emb.ravel())) / s_emb.size
  block = 0.0
  for name in ("block0", "block1", "block10"):
    s, t = s_inter[name].ravel(), t_inter[name].ravel()
    block += sum((a - b) ** 2 for a, b in zip(s, t)) / s.size
  return final + w * block, final


@pytest.mark.parametrize("block_weight", [0.0, 0.1, 2.5])
def test_distill_loss_matches_hand_computation(block_weight):
  rng = np.random.default_rng(0)
  s_emb, t_emb = rng.standard_normal((4, 6)), rng.standard_normal((4, 6)) + 0.5
  shapes = {"block0": (4, 3, 5), "block1": (4, 3, 5), "block10": (4, 2),
            # not per-block MSE terms: other intermediates and the MLP activations of a block
            "stem": (4, 7), "block0_mlp_act": (4, 3, 9), "embedding": (4, 6)}
  s_inter = {k: rng.standard_normal(v) for k, v in shapes.items()}
  t_inter = {k: rng.standard_normal(v) * 2 for k, v in shapes.items()}
  loss, final = student.distill_loss(s_emb, s_inter, t_emb, t_inter, block_weight)
  ref_loss, ref_final = _hand_loss(s_emb, s_inter, t_emb, t_inter, block_weight)
  assert float(final) == pytest.approx(ref_final, rel=1e-5)
  assert float(loss) == pytest.approx(ref_loss, rel=1e-5)
  # the student equal to the teacher costs nothing; a constant offset c costs c^2 per term
  zero, _ = student.distill_loss(t_emb, t_inter, t_emb, t_inter, block_weight)
  assert float(zero) == 0.0
  off = {k: v + 0.5 for k, v in t_inter.items()}
  loss, final = student.distill_loss(t_emb + 0.5, off, t_emb, t_inter, block_weight)
  assert float(final) == pytest.approx(0.25, rel=1e-5)
  assert float(loss) == pytest.approx(0.25 + block_weight * 3 * 0.25, rel=1e-5)


def test_distillation_moves_student_towards_teacher_on_held_out_images(tmp_path):
  """30 steps of tiny-ViT distillation (final + 0.1 x block MSE) on digits_grey:train cut the
  student-teacher MSE on digits_grey:val images to about 0.2x its value at initialisation."""
  for m in ("sklearn", "skimage", "PIL"):
    pytest.importorskip(m)
  from configs.distill import digits  # pylint: disable=import-outside-toplevel
  from featcon import distill, models  # pylint: disable=import-outside-toplevel
  from featcon import training as train_lib  # pylint: disable=import-outside-toplevel
  from featcon.data import Loader, refs  # pylint: disable=import-outside-toplevel
  c = digits.get_config("tiny-vit,smoke")
  c.teacher.source = "random"
  c.distill.update(steps=30, batch_size=16, log_every=30, checkpoint_every=30, warmup_steps=2)
  assert c.distill.block_weight == 0.1
  teacher = distill.teacher_variables(c, str(tmp_path))
  net = models.make_encoder(c.model.student)
  before = train_lib.init_variables(net, c.data.image_size, c.seed)
  after = distill.distill(c, str(tmp_path))
  x = Loader(refs.open_dataset(c, "digits_grey:val").source, 64, 32).train_batch(0)["image"]
  t = np.asarray(models.make_encoder(c.model.teacher).apply(teacher, x)[0])
  d0 = np.mean((np.asarray(net.apply(before, x)[0]) - t) ** 2)
  d1 = np.mean((np.asarray(net.apply(after, x)[0]) - t) ** 2)
  assert d1 < 0.4 * d0, (d0, d1)  # measured: 1.96 -> 0.38 (ratio 0.19)
