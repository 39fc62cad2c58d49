"""Two processes on the loopback interface (jax.distributed, one CPU device each) run a small
sweep and a short distillation; the results equal a one-process run on two CPU devices (the
same global mesh), and only process 0 writes files."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

for _m in ("sklearn", "skimage", "PIL"):  # the distillation's digits data
  pytest.importorskip(_m)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WORKER = r"""
import json, sys
pid, n, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
from featcon import distributed
if n > 1:
  distributed.initialize(cpu_devices=1, coordinator_address=f"127.0.0.1:{port}",
                         num_processes=n, process_id=pid)
else:
  distributed.initialize(cpu_devices=2, distributed="no")
import jax, numpy as np
import featcon
cfg = {"seed": [0, 1, 2], "train": {"lr": [0.02, 0.05], "steps": 40, "log_every": 20},
       "data": {"d": 16, "k_core": 4, "k_bg": 4}}
df = featcon.sweep(cfg, workdir=out + "/sweep")
from configs.distill import digits
from featcon import distill, models
from featcon.data import Loader, refs
c = digits.get_config("tiny-rn,smoke")
c.teacher.source = "random"
c.distill.log_every = 1
c.num_devices = 0
v = distill.distill(c, out + "/distill")
x = Loader(refs.open_dataset(c, "digits_grey:val").source, 16, 32).train_batch(0)["image"]
emb = np.asarray(models.make_encoder(c.model.student).apply(jax.device_get(v), x)[0])
print("RESULT", json.dumps({"devices": jax.device_count(), "processes": jax.process_count(),
                            "ood": df["ood_risk"].tolist(), "emb": emb.tolist()}), flush=True)
"""


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _result(stdout):
  return json.loads(stdout.split("RESULT", 1)[1].strip().splitlines()[0])


def _losses(path):
  with open(path) as f:
    return [json.loads(l)["loss"] for l in f]


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
  script = tmp_path / "worker.py"
  script.write_text(_WORKER)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  env.pop("XLA_FLAGS", None)
  port = _free_port()
  multi = tmp_path / "multi"
  procs = [subprocess.Popen([sys.executable, str(script), str(i), "2", str(port), str(multi)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  single = tmp_path / "single"
  ref = subprocess.run([sys.executable, str(script), "0", "1", "0", str(single)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
  outs = []
  for p in procs:
    try:
      out, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    assert p.returncode == 0, err[-3000:]
    outs.append(_result(out))
  assert ref.returncode == 0, ref.stderr[-3000:]
  want = _result(ref.stdout)
  assert want["processes"] == 1 and want["devices"] == 2
  for got in outs:
    assert got["processes"] == 2 and got["devices"] == 2
    # Sweep: per-configuration programs, sharded the same way -> the same numbers.
    np.testing.assert_allclose(got["ood"], want["ood"], rtol=1e-6)
    # Distillation: the same global batch; the cross-process gradient reduction may round
    # differently from the in-process one.
    emb, ref_emb = np.asarray(got["emb"]), np.asarray(want["emb"])
    assert np.abs(emb - ref_emb).max() / np.abs(ref_emb).max() < 1e-4
  np.testing.assert_allclose(_losses(multi / "distill" / "student" / "metrics.jsonl"),
                             _losses(single / "distill" / "student" / "metrics.jsonl"),
                             rtol=1e-5)
  # One set of outputs, written by process 0: no stray temporary files, one metrics line per
  # logged step.
  assert sorted(os.listdir(multi / "sweep")) == sorted(os.listdir(single / "sweep"))
  assert not [f for _, _, fs in os.walk(multi) for f in fs if f.startswith(".tmp-")]
