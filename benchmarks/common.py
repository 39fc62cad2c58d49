"""What several benchmarks share: a timer and the theory workloads.

Imports neither JAX nor torch, so a benchmark can set JAX's flags before JAX starts.
"""
import os
import time

import numpy as np

K, N_FIG8, N_EVAL = 64, 1000, 4096  # feature count, Figure 8's training set, evaluation sets


def timed(fn, reps):
  """(median, min) seconds of ``fn()`` over ``reps`` calls; ``fn`` must block until its result
  is ready (``jax.block_until_ready``)."""
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return float(np.median(times)), float(np.min(times))


def load():
  """The 1-, 5- and 15-minute load averages (``uptime``)."""
  return [round(x, 2) for x in os.getloadavg()]


def jax_peak(n=2048, reps=10):
  """The best float32 ``n x n`` matmul FLOP/s of ``jax.jit(a @ a)`` over ``reps`` calls after
  one warm-up: the roofline the benchmarks report fractions of (imports JAX on first use)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  return 2 * n ** 3 / timed(lambda: f(a).block_until_ready(), reps)[1]


def write_result(path, res, **kw):
  """Writes a benchmark's result dict ``res`` as JSON to ``path``, creating its folder
  (``featcon.io.write_json``; ``kw`` goes to ``json.dump``)."""
  from featcon import io  # pylint: disable=import-outside-toplevel
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  io.write_json(path, res, **kw)


def workload_config(workload, steps, seeds, n_online, n_eval=N_EVAL):
  """The theory workloads as sweep configs.

  ``fig8``: the public script's fixed set (n = 1000, d = m = 256, K = 64, hinge, momentum SGD),
  ``seeds`` x {relu, identity}. ``online``: batch 32, width 512, a fresh batch each step,
  ``n_online`` configurations (``n_online / 8`` seeds x 8 learning rates in [1e-3, 1e-1]).
  ID/OOD risks are measured every 1,000 steps (every ``steps`` if 1,000 does not divide it).
  """
  log_every = 1000 if steps % 1000 == 0 else steps
  if workload == "fig8":
    return {"seed": list(range(seeds)), "model": {"activation": ["relu", "identity"]},
            "train": {"steps": steps, "log_every": log_every}, "data": {"n_eval": n_eval},
            "sweep": {"progress": False}}
  if workload != "online":
    raise ValueError(f"workload={workload!r}; allowed: fig8, online")
  n_lr = 8
  return {"seed": list(range(n_online // n_lr)), "data": {"regime": "online", "n_eval": n_eval},
          "model": {"width": 512},
          "train": {"batch_size": 32, "momentum": 0.0,
                    "lr": [float(x) for x in np.geomspace(1e-3, 1e-1, n_lr)],
                    "steps": steps, "log_every": log_every}, "sweep": {"progress": False}}
