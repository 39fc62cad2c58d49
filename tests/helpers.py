"""Small shared helpers for the tests."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.theory import config as config_lib
from featcon.theory import program
from featcon.theory import train as theory_train

SMALL = {"data": {"d": 64, "k_core": 16, "k_bg": 16, "n_train": 400, "n_eval": 2048},
         "model": {"width": 64}, "train": {"steps": 4000, "log_every": 500, "lr": 1e-2}}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sweep_on_host_devices(tmp_path, cfg, metrics, counts=(1, 2)):
  """``featcon.sweep(cfg)`` in a fresh process per entry of ``counts``, each with that many
  forced XLA:CPU host devices; returns per process ``{"devices": n, metric: [values]}``."""
  script = tmp_path / "run.py"
  script.write_text(
      "import json, jax, featcon\n"
      f"df = featcon.sweep({cfg!r})\n"
      "print(json.dumps({'devices': jax.device_count(),"
      f" **{{k: df[k].tolist() for k in {tuple(metrics)!r}}}}}))\n")
  outs = []
  for n in counts:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    outs.append(json.loads(p.stdout.strip().splitlines()[-1]))
  assert [o["devices"] for o in outs] == list(counts)
  return outs


def merge(base, over):
  out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
  for k, v in over.items():
    if isinstance(v, dict):
      out[k] = {**out.get(k, {}), **v}
    else:
      out[k] = v
  return out


def run_seeds(over, seeds=(0, 1, 2, 3), **static_kw):
  """Runs a config over several seeds with jit(vmap(train)); returns numpy metrics [seed, log]."""
  cfg = config_lib.resolve(over)
  static, dyn = program.from_config(cfg, return_params=False)
  if static_kw:
    import dataclasses
    static = dataclasses.replace(static, **static_kw)
  n = len(seeds)
  dyns = jax.tree.map(lambda x: jnp.stack([x] * n), dyn)
  dyns = dyns._replace(seed=jnp.asarray(np.asarray(seeds, np.uint32)))
  m, final = jax.jit(jax.vmap(theory_train.make_train(static)))(dyns)
  return {k: np.asarray(v) for k, v in m.items()}, jax.device_get(final)


def params(cases, ids, slow=()):
  """``pytest.param`` per case with its id; the ids in ``slow`` carry the ``slow`` marker (run by
  ``make test-all``, not by the quick ``make test``; docs/testing.md)."""
  assert len(cases) == len(ids) and set(slow) <= set(ids), (ids, slow)
  return [pytest.param(*(c if isinstance(c, tuple) else (c,)), id=i,
                       marks=[pytest.mark.slow] if i in slow else [])
          for c, i in zip(cases, ids)]
