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


@pytest.mark.slow
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
import jax, numpy as np, optax
from configs.distill import digits
from featcon import distill, models, training as train_lib
from featcon.data import refs
train_lib.enable_compilation_cache()
assert len(jax.devices()) == 2, jax.devices()
c = digits.get_config("{model},smoke")
c.teacher.source = "random"
teacher = models.make_encoder(c.model.teacher, **c.model.overrides)
student = models.make_encoder(c.model.student, **c.model.student_overrides)
tvars = distill.teacher_variables(c, sys.argv[1])
svars = train_lib.init_variables(student, c.data.image_size, c.seed)
ds = refs.open_dataset(c, c.data.distill_train, "config.data.distill_train")
loader = refs.train_loader(c, ds, c.distill.batch_size, c.seed)
# distill's own step with SGD at learning rate 1: the parameter change is minus the gradient.
sgd = optax.sgd(1.0)
step = distill.distill_step(teacher, student, sgd, c.distill.block_weight)
out = {{}}
for n in (1, 2):
  mesh = train_lib.make_mesh(n)
  repl, _ = train_lib.shardings(mesh)
  batch = next(iter(train_lib.batch_stream(loader, mesh, 1)(0)))
  assert len(batch["image"].sharding.device_set) == n, batch["image"].sharding
  state = jax.device_put(train_lib.new_state(svars["params"], svars.get("batch_stats"), sgd), repl)
  new, m = jax.jit(step, out_shardings=(repl, repl))(state, batch, jax.device_put(tvars, repl))
  grads = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                       state["params"], new["params"])
  out[n] = (float(m["loss"]), jax.tree.leaves(grads),
            [np.asarray(x) for x in jax.tree.leaves(new.get("batch_stats"))])
(l1, g1, b1), (l2, g2, b2) = out[1], out[2]
gmax = max(np.abs(g).max() for g in g1)
res = {{"loss": abs(l1 - l2) / abs(l1),
        # every leaf, against the largest gradient of any parameter
        "grad": max(np.abs(a - b).max() for a, b in zip(g1, g2)) / gmax,
        # leaves with non-negligible gradients, each against its own largest entry
        "grad_leaf": max(np.abs(a - b).max() / np.abs(a).max()
                         for a, b in zip(g1, g2) if np.abs(a).max() > 1e-3 * gmax),
        "batch_stats": max([np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)
                            for a, b in zip(b1, b2)] or [0.0]),
        "num_batch_stats": len(b1)}}
# The full stage (fit, the sharded loader, checkpoints) on 1 and 2 devices: the same first loss.
first = []
for n in (1, 2):
  c.num_devices = n
  c.distill.update(steps=1, log_every=1)
  distill.distill(c, sys.argv[1] + f"/d{{n}}")
  with open(sys.argv[1] + f"/d{{n}}/student/metrics.jsonl") as f:
    first.append(json.loads(f.readline())["loss"])
res["fit_loss"] = abs(first[0] - first[1]) / abs(first[0])
print("RESULT", json.dumps({{k: float(v) for k, v in res.items()}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-rn"])
def test_two_device_sharded_training_equals_single_device(tmp_path, model):
  """One step of distillation on a batch sharded over 2 devices equals the 1-device step.

  Compares distill's step itself (with SGD at learning rate 1, so that the parameter change is
  the gradient): the loss, every gradient and the updated BatchNorm statistics, to tolerances
  far below what a sharding bug produces (a wrongly split batch, a gradient not summed over
  devices, per-device BatchNorm statistics each change the gradients by >= 1e-2 relative);
  and the first loss of the full stage on 1 and 2 devices. Multi-step trajectories are not
  compared: the cross-device reduction order changes the forward pass by ~1e-7, and Adam's
  normalised update turns that rounding noise in gradients that are exactly zero (the
  attention-pool key bias: softmax is shift-invariant) into steps of +-lr, so after a few
  steps the runs drift apart without any bug.
  """
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _SHARDED.format(model=model), str(tmp_path)],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.split("RESULT")[1])
  assert res["num_batch_stats"] > 0  # the BatchNorm statistics are compared
  assert res["loss"] < 1e-5, res
  assert res["grad"] < 1e-4, res
  assert res["grad_leaf"] < 1e-3, res
  assert res["batch_stats"] < 1e-5, res
  assert res["fit_loss"] < 1e-5, res


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
