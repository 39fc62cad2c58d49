"""TensorBoard event files of long runs: read back by parsing the TFRecord framing and the
Event protobuf, independently of the writer."""
import glob
import json
import os
import struct

import jax.numpy as jnp
import numpy as np
from tensorboardX.proto import event_pb2

from featcon import training as train_lib


def read_scalars(logdir):
  """{tag: [(step, value)]} from every events file under ``logdir`` (TFRecord: uint64 length,
  uint32 crc, payload, uint32 crc)."""
  out = {}
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    data = open(path, "rb").read()
    pos = 0
    while pos < len(data):
      (n,) = struct.unpack("<Q", data[pos:pos + 8])
      payload = data[pos + 12:pos + 12 + n]
      pos += 12 + n + 4
      ev = event_pb2.Event.FromString(payload)
      for v in ev.summary.value:
        out.setdefault(v.tag, []).append((ev.step, v.simple_value))
  return out


def test_fit_writes_jsonl_and_event_files(tmp_path, capfd):
  mesh = train_lib.make_mesh(1)
  state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.ones(2)}}

  def step(s, batch):
    loss = 1.0 / (s["step"].astype(jnp.float32) + 1.0) + 0 * batch.sum()
    return dict(s, step=s["step"] + 1), {"loss": loss, "mse": 2 * loss}

  mpath = str(tmp_path / "stage" / "metrics.jsonl")
  train_lib.fit(state, step, lambda start: iter([jnp.ones(2)] * 6), total_steps=6,
                ckpt_dir=str(tmp_path / "ckpt"), metrics_path=mpath, mesh=mesh,
                log_every=2, name="toy")
  err = capfd.readouterr().err
  assert "toy: 6 steps (0 -> 6 of 6)" in err and "final loss 0.16667" in err
  rows = [json.loads(l) for l in open(mpath)]
  assert [r["step"] for r in rows] == [2, 4, 6]
  scalars = read_scalars(str(tmp_path / "stage" / "tensorboard"))
  assert [s for s, _ in scalars["toy/loss"]] == [2, 4, 6]
  # the loss logged at step t is that of the state before the step: 1 / t
  np.testing.assert_allclose([v for _, v in scalars["toy/loss"]], [1 / 2, 1 / 4, 1 / 6],
                             rtol=1e-6)
  np.testing.assert_allclose([v for _, v in scalars["toy/mse"]], [r["mse"] for r in rows],
                             rtol=1e-6)
  assert "toy/steps_per_s" in scalars and "toy/stage" not in scalars


def test_metrics_writer_without_tensorboard(tmp_path):
  w = train_lib.MetricsWriter(str(tmp_path / "m.jsonl"), tensorboard=False)
  w.write({"stage": "x", "step": 1, "a": 0.5})
  w.close()
  assert not os.path.exists(tmp_path / "tensorboard")
  assert json.loads(open(tmp_path / "m.jsonl").read()) == {"stage": "x", "step": 1, "a": 0.5}
