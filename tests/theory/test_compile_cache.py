"""The sweep's programs advanced from the host: the same numbers as one program, and a rerun of
the same sweep served by JAX's persistent compilation cache (docs/performance.md)."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import featcon
from featcon.theory import plan as plan_lib
from featcon.theory import program as program_lib
from featcon.theory import runner
from featcon.theory import train as theory_train
from tests.helpers import merge

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BASE = {"data": {"d": 24, "k_core": 4, "k_bg": 4, "n_train": 64, "n_eval": 256},
        "model": {"width": 16}, "train": {"steps": 80, "log_every": 20, "lr": 5e-2}}


@pytest.mark.parametrize("n_logs,expected", [(1, (2, 1)), (4, (2, 3)), (20, (3, 7)),
                                             (10, (2, 6)), (100, (13, 8))])
def test_log_calls_cover_every_log_step(n_logs, expected):
  per_call, calls = runner.log_calls(n_logs)
  assert (per_call, calls) == expected
  assert per_call >= 2 and calls <= runner.MAX_CALLS
  assert (calls - 1) * per_call < n_logs + 1 <= calls * per_call


@pytest.mark.parametrize("over", [
    {"model": {"activation": ["relu", "identity"]}},       # general loop and linear shortcut
    {"data": {"regime": "online"}, "train": {"batch_size": 8, "momentum": 0.0}},
], ids=["fixed", "online"])
def test_host_advanced_chunks_equal_one_program(over):
  """4 log intervals = 5 log steps in 3 calls of 2 (the last one padded): bit for bit the
  metrics and final state of the one-program ``jit(vmap(make_train))``."""
  cfg = merge(BASE, dict(over, seed=[0, 1]))
  for group in plan_lib.make_groups([featcon.resolve_config(c) for _, c in plan_lib.expand(cfg)]):
    program = runner.compile_group(group, progress=False)
    assert (program.per_call, program.n_calls) == (2, 3)
    got, div, _ = runner.run_group(group, progress=False, program=program)
    args = runner._chunk_args(group, np.arange(group.n_trainings), jax.devices())  # pylint: disable=protected-access
    one = jax.jit(jax.vmap(theory_train.make_train(group.static))).lower(*args).compile(
        program_lib.compiler_options())  # the runner's options
    want, final = one(*args)
    want, _ = group.per_config({k: np.asarray(v) for k, v in want.items()},
                               np.asarray(final["diverged_step"]))
    assert sorted(got) == sorted(want)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert got["step"].tolist()[0] == [0, 20, 40, 60, 80]


_SCRIPT = r"""
import json, sys
import jax
from featcon import jax_cache
jax_cache.enable(sys.argv[1])
counts = {}
def on_event(name, **kw):
  counts[name] = counts.get(name, 0) + 1
jax.monitoring.register_event_listener(on_event)
import featcon
cfg = json.loads(sys.argv[2])
df = featcon.sweep(cfg, progress=False)
print(json.dumps({"counts": counts, "id_risk": df["id_risk"].tolist(),
                  "compile_s": sum(t["compile_s"] for t in df.attrs["timings"].values())}))
"""


def test_rerun_of_a_sweep_compiles_nothing(tmp_path):
  """Two processes run the same two-group sweep with one cache folder: the first compiles and
  stores every program, the second loads all of them (no cache miss) and gets the same
  numbers."""
  cfg = merge(BASE, {"seed": [0, 1], "model": {"activation": ["relu", "identity"]}})
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  runs = []
  for _ in range(2):
    p = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "cache"), json.dumps(cfg)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
  first, second = (r["counts"] for r in runs)
  requests = "/jax/compilation_cache/compile_requests_use_cache"
  misses, hits = "/jax/compilation_cache/cache_misses", "/jax/compilation_cache/cache_hits"
  assert first.get(misses, 0) >= 6  # 2 groups x 3 stages, each compiled and stored
  assert second.get(misses, 0) == 0
  assert second[hits] == second[requests] == first[requests]
  assert runs[0]["id_risk"] == runs[1]["id_risk"]
