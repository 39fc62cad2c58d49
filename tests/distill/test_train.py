import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.distill import digits
from featcon.distill import stages
from featcon.distill import train as train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(**distill):
  c = digits.get_config("tiny-rn,smoke")
  c.teacher.source = "random"  # teacher pre-training is covered by the end-to-end test
  c.distill.update(distill)
  return c


def _leaves(variables):
  return [np.asarray(x) for x in jax.tree.leaves(variables)]


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
  full = stages.distill(_config(), str(tmp_path / "full"))
  # Interrupted after step 3 (last checkpoint at 3), then rerun: resumes from step 3.
  stages.distill(_config(stop_after=3, checkpoint_every=100), str(tmp_path / "cut"))
  ckpts = tmp_path / "cut" / "student" / "checkpoints"
  assert sorted(int(p) for p in os.listdir(ckpts) if p.isdigit()) == [3]
  resumed = stages.distill(_config(checkpoint_every=100), str(tmp_path / "cut"))
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
import sys
import jax, numpy as np
from configs.distill import digits
from featcon.distill import stages, train as train_lib
train_lib.enable_compilation_cache()
assert len(jax.devices()) == 2, jax.devices()
out = []
for n in (1, 2):
  c = digits.get_config("{model},smoke")
  c.teacher.source = "random"
  c.num_devices = n
  out.append(stages.distill(c, sys.argv[1] + f"/d{{n}}"))
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(out[1]), strict=True))
print("MAXDIFF", diff)
"""


@pytest.mark.parametrize("model", ["tiny-rn"])
def test_two_device_sharded_training_equals_single_device(tmp_path, model):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _SHARDED.format(model=model), str(tmp_path)],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  diff = float(r.stdout.split("MAXDIFF")[1])
  assert diff < 1e-5, diff
