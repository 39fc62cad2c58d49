import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon import training as train_lib

# Needs the "data" extras (pip install -e ".[test,data]"); skipped without them.
for _m in ("sklearn", "skimage", "PIL"):
  pytest.importorskip(_m)
from configs.distill import digits  # pylint: disable=g-import-not-at-top
from featcon import distill, models  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(**distill):
  c = digits.get_config("tiny-rn,smoke")
  c.teacher.source = "random"  # teacher pre-training is covered by the end-to-end test
  c.distill.update(distill)
  return c


def _leaves(variables):
  return [np.asarray(x) for x in jax.tree.leaves(variables)]


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
  full = distill.distill(_config(), str(tmp_path / "full"))
  # Interrupted after step 3 (last checkpoint at 3), then rerun: resumes from step 3.
  distill.distill(_config(stop_after=3, checkpoint_every=100), str(tmp_path / "cut"))
  ckpts = tmp_path / "cut" / "student" / "checkpoints"
  assert sorted(int(p) for p in os.listdir(ckpts) if p.isdigit()) == [3]
  resumed = distill.distill(_config(checkpoint_every=100), str(tmp_path / "cut"))
  for a, b in zip(_leaves(full), _leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  with open(tmp_path / "cut" / "student" / "metrics.jsonl") as f:
    steps = [json.loads(l)["step"] for l in f]
  assert steps == [2, 4, 6]  # logged before the cut (2) and after resuming (4, 6)


def test_non_finite_loss_stops_with_the_step(tmp_path):
  mesh = train_lib.make_mesh(1)
  state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.ones(2)}}
  def step(s, batch):
    loss = jnp.where(s["step"] >= 2, jnp.nan, 1.0) + 0 * batch.sum()
    return dict(s, step=s["step"] + 1), {"loss": loss}
  with pytest.raises(FloatingPointError, match="non-finite loss nan at step 3"):
    train_lib.fit(state, step, lambda start: iter([jnp.ones(2)] * 10), total_steps=10,
                  ckpt_dir=str(tmp_path / "c"), metrics_path=str(tmp_path / "m.jsonl"),
                  mesh=mesh, name="t")


_SHARDED = r"""
import json, sys
import jax, numpy as np
from configs.distill import digits
from featcon.data import Loader
from featcon import distill, models, training as train_lib
from featcon.data import refs
train_lib.enable_compilation_cache()
assert len(jax.devices()) == 2, jax.devices()
embs, losses = [], []
for n in (1, 2):
  c = digits.get_config("{model},smoke")
  c.teacher.source = "random"
  c.distill.log_every = 1
  c.num_devices = n
  v = distill.distill(c, sys.argv[1] + f"/d{{n}}")
  x = Loader(refs.open_dataset(c, "digits_grey:val").source, 16, 32).train_batch(0)["image"]
  embs.append(np.asarray(models.make_encoder(c.model.student).apply(v, x)[0]))
  with open(sys.argv[1] + f"/d{{n}}/student/metrics.jsonl") as f:
    losses.append([json.loads(l)["loss"] for l in f])
print("EMB", float(np.abs(embs[0] - embs[1]).max() / np.abs(embs[0]).max()))
print("LOSS", float(np.max(np.abs(np.subtract(*losses)) / np.abs(losses[0]))))
"""


@pytest.mark.parametrize("model", ["tiny-rn"])
def test_two_device_sharded_training_equals_single_device(tmp_path, model):
  """Same losses at every step and the same function (embeddings) after training.

  Parameters are not compared leaf by leaf: the attention-pool key bias has an exactly zero
  gradient (softmax is shift-invariant), so Adam amplifies its 1e-10 rounding noise without
  any effect on the output.
  """
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _SHARDED.format(model=model), str(tmp_path)],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  emb = float(r.stdout.split("EMB")[1].split()[0])
  loss = float(r.stdout.split("LOSS")[1].split()[0])
  assert loss < 1e-5, loss
  assert emb < 1e-4, emb


def test_vit_block_loss_and_attention_init_from_teacher(tmp_path):
  c = digits.get_config("tiny-vit,smoke")
  c.teacher.source = "random"
  c.distill.update(init_attention_from_teacher=True, block_weight=0.1, log_every=1)
  assert c.distill.block_weight == 0.1
  teacher = distill.teacher_variables(c, str(tmp_path))
  student0 = train_lib.init_variables(
      models.make_encoder(c.model.student), c.data.image_size, c.seed)
  mixed = distill.init_attention_from_teacher(student0["params"], teacher["params"])
  flat = lambda t: {jax.tree_util.keystr(k): v
                    for k, v in jax.tree_util.tree_flatten_with_path(t)[0]}
  m, t, s = flat(mixed), flat(teacher["params"]), flat(student0["params"])
  attn = [k for k in m if "attn" in k]
  assert attn and all(np.array_equal(m[k], t[k]) for k in attn)
  assert all(np.array_equal(m[k], s[k]) for k in m if "attn" not in k)
  distill.distill(c, str(tmp_path))
  with open(tmp_path / "student" / "metrics.jsonl") as f:
    recs = [json.loads(l) for l in f]
  # The loss includes 0.1 x the per-block MSEs on top of the final-representation MSE.
  assert all(r["loss"] > r["mse_final"] for r in recs)
