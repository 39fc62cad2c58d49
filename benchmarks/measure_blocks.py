"""The in-scan measurement of the online workload, one block against blocks of rows, side by side.

  python -m benchmarks.measure_blocks --reps=5 --out=runs/measure_blocks.json

``featcon.theory.metrics.measure`` at one log step of the online workload of
``benchmarks.theory_vs_torch`` (64 configurations, width 512, K = 64, ID and OOD evaluation sets
of ``--n_eval`` rows), ``vmap``-ed over the configurations and sharded over the CPU devices as
the sweep runs it: with the evaluation sets measured in one block (``metrics.EVAL_BLOCK`` set to
``n_eval``: the (n_eval, m) pre-activations of every configuration written and read back) and
in blocks of each size of ``--blocks`` (:func:`featcon.theory.metrics.row_sums`), alternating.
Reports milliseconds per measurement, the largest difference from the one-block numbers, and
the two evaluation matmuls' FLOP/s as a fraction of the run's roofline (the best JAX 2048²
float32 matmul).
"""
import time
import types

from absl import app
from absl import flags

from benchmarks.common import K, N_EVAL, jax_peak, load, timed, write_result

flags.DEFINE_integer("reps", 5, "alternating repetitions of each block size")
flags.DEFINE_integer("n_eval", N_EVAL, "rows of each evaluation set")
flags.DEFINE_list("blocks", ["64", "128", "256", "512"], "block sizes besides one block")
flags.DEFINE_integer("configs", 64, "configurations measured at once")
flags.DEFINE_integer("cpu_devices", 0, "CPU devices (featcon.use_all_cpu_cores): 0 = one per core")
flags.DEFINE_string("out", "", "optional JSON file for the numbers")
FLAGS = flags.FLAGS

WIDTH = 512


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import featcon  # pylint: disable=import-outside-toplevel
  from featcon.theory import metrics  # pylint: disable=import-outside-toplevel
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel

  featcon.use_all_cpu_cores(FLAGS.cpu_devices)
  n, n_cfg = FLAGS.n_eval, FLAGS.configs
  roofline = jax_peak()
  static = types.SimpleNamespace(loss="hinge", k_core=K // 2, task="classification", n_shifts=0,
                                 regime="online", k_spurious=0, layer_metrics=False)

  def problem(i):
    ks = jax.random.split(jax.random.PRNGKey(i), 4)
    y = jnp.where(jax.random.bernoulli(ks[2], 0.5, (n,)), 1.0, -1.0)
    return (jax.random.normal(ks[3], (WIDTH, K)) / jnp.sqrt(K),
            jax.random.uniform(ks[0], (n, K)), jax.random.uniform(ks[1], (n, K)) - 0.5, y)

  sharding = NamedSharding(Mesh(np.asarray(jax.devices()), ("config",)), PartitionSpec("config"))
  args = jax.device_put(jax.jit(jax.vmap(problem))(jnp.arange(n_cfg)), sharding)

  def one(w, ex, eox, y):
    prob = types.SimpleNamespace(basis=jnp.eye(K), eval_x=ex, eval_ood_x=eox, eval_t=y,
                                 eval_y=y)
    params = {"W": w, "a": jnp.full((WIDTH,), 1.0 / WIDTH)}
    return metrics.measure(static, prob, params, jax.nn.relu, jnp.ones(WIDTH))

  programs, outs = {}, {}
  for block in [n] + [int(b) for b in FLAGS.blocks]:
    metrics.EVAL_BLOCK = block  # read when the program is traced
    programs[block] = jax.jit(jax.vmap(one)).lower(*args).compile()
    outs[block] = jax.block_until_ready(programs[block](*args))
  flops = n_cfg * 2 * (2 * n * K * WIDTH)  # the ID and OOD pre-activation matmuls
  res = {"flags": {"reps": FLAGS.reps, "n_eval": n, "configs": n_cfg},
         "jax_devices": jax.device_count(), "roofline_flops": roofline,
         "versions": featcon.versions(),
         "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
         "load_start": load(), "runs": []}
  print(f"roofline {roofline / 1e9:.0f} GFLOP/s, {jax.device_count()} devices", flush=True)
  times = {b: [] for b in programs}
  for _ in range(FLAGS.reps):
    for b, prog in programs.items():
      times[b].append(timed(lambda prog=prog: jax.block_until_ready(prog(*args)), 1)[1])
  for b, ts in times.items():
    diff = max(float(jnp.max(jnp.abs(outs[b][k] - outs[n][k]))) for k in outs[n])
    r = {"block": b, "ms_median": 1e3 * float(np.median(ts)), "ms_min": 1e3 * min(ts),
         "max_abs_diff_to_one_block": diff,
         "fraction_of_roofline": flops / min(ts) / roofline}
    res["runs"].append(r)
    print(f"block {b:5d}{' (one block)' if b == n else ''}: {r['ms_median']:.0f} ms median "
          f"({r['ms_min']:.0f} min), {100 * r['fraction_of_roofline']:.0f} % of roofline, "
          f"largest difference {diff:.1e}", flush=True)
  res["load_end"] = load()
  if FLAGS.out:
    write_result(FLAGS.out, res, indent=2)


if __name__ == "__main__":
  app.run(main)
