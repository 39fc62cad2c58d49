"""featcon.distributed: CPU devices before JAX starts, cluster detection, process-local rows."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from featcon import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_use_all_cpu_cores_refuses_bad_counts_and_a_started_backend():
  with pytest.raises(ValueError, match="num_devices=-1"):
    distributed.use_all_cpu_cores(-1)
  jax.devices()  # the test process's JAX has started
  with pytest.raises(RuntimeError, match="before JAX starts"):
    distributed.use_all_cpu_cores()


@pytest.mark.parametrize("env,want", [
    ({}, None),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, None),  # one task: nothing to coordinate
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}, "slurm"),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "1"}, None),
    ({"OMPI_MCA_orte_hnp_uri": "x", "OMPI_COMM_WORLD_SIZE": "4"}, "ompi"),
    ({"TPU_WORKER_HOSTNAMES": "h0"}, None),
    ({"TPU_WORKER_HOSTNAMES": "h0,h1,h2,h3"}, "tpu"),
])
def test_cluster_detection(env, want):
  assert distributed.cluster_detected(env) == want


def test_initialize_refuses_contradicting_flags():
  with pytest.raises(ValueError, match="contradicts"):
    distributed.initialize(cpu_devices=1, process_id=0, distributed="no")
  with pytest.raises(ValueError, match="distributed='maybe'"):
    distributed.initialize(cpu_devices=1, distributed="maybe")


def test_one_process_holds_every_row_and_gathers_numpy():
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  sh = NamedSharding(mesh, P("data"))
  n = 4 * len(jax.devices())
  assert distributed.local_rows(sh, n) == slice(0, n)
  x = distributed.from_local_rows({"a": np.arange(n)}, sh, n)
  got = distributed.gather(x)
  assert isinstance(got["a"], np.ndarray)
  np.testing.assert_array_equal(got["a"], np.arange(n))
  assert distributed.is_main() and distributed.agree(True) is True


_SWEEP = r"""
import json, sys, warnings
import featcon
featcon.use_all_cpu_cores(int(sys.argv[1]))
import jax
cfg = {"seed": [0, 1, 2], "train": {"lr": [0.02, 0.05], "steps": 60, "log_every": 20},
       "data": {"d": 16, "k_core": 4, "k_bg": 4}}
with warnings.catch_warnings(record=True) as w:
  warnings.simplefilter("always")
  df = featcon.sweep(cfg)
  featcon.sweep(cfg)  # the note comes once per process
print(json.dumps({"devices": jax.device_count(), "ood": df["ood_risk"].tolist(),
                  "bg": df["bg_signed"].tolist(),
                  "warnings": [str(x.message) for x in w]}))
"""


@pytest.mark.slow
def test_sweep_on_two_cpu_devices_equals_one(tmp_path):
  """featcon.use_all_cpu_cores(2) shards the configurations; the metrics are the same."""
  script = tmp_path / "s.py"
  script.write_text(_SWEEP)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  env.pop("XLA_FLAGS", None)
  env.pop("JAX_NUM_CPU_DEVICES", None)
  outs = []
  for n in (1, 2):
    p = subprocess.run([sys.executable, str(script), str(n)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    outs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    outs[-1]["noted"] = (p.stdout + p.stderr).count("use_all_cpu_cores")
  assert [o["devices"] for o in outs] == [1, 2]
  # The sharded program is compiled separately (its fusions may differ): float32 rounding.
  np.testing.assert_allclose(outs[0]["ood"], outs[1]["ood"], rtol=1e-5)
  np.testing.assert_allclose(outs[0]["bg"], outs[1]["bg"], rtol=1e-5, atol=1e-9)
  # No warning in normal use; one device of a multi-core machine is noted on the sweep's first
  # console line, once per process; two devices are not.
  assert outs[0]["warnings"] == [] and outs[1]["warnings"] == []
  assert outs[0]["noted"] == (1 if distributed.cpu_cores() > 1 else 0)
  assert outs[1]["noted"] == 0
