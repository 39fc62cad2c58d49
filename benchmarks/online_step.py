"""The online step with and without shared batches (``sweep.share_batches``), side by side.

  python -m benchmarks.online_step --steps=2000 --reps=3 --out=runs/online_step.json

In one process, alternating: the online workload of ``benchmarks.theory_vs_torch`` (64
configurations = 8 seeds x 8 learning rates, width 512, batch 32, K = 64) through
``featcon.sweep`` with ``sweep.share_batches`` false (64 small matmuls per step) and true (8
streams, each one wide matmul), each program compiled ahead so the time is training alone; and
the cost of drawing the step's batches, 64 draws against 8, with featcon's threefry and with
JAX's ``rbg`` / ``unsafe_rbg`` generators (the profile's other part). Reports
ms per step, training-matmul GFLOP/s and the fraction of the run's roofline (the best JAX 2048²
float32 matmul).
"""
import time

from absl import app
from absl import flags

from benchmarks.common import K, jax_peak, load, timed, workload_config, write_result

flags.DEFINE_integer("steps", 2000, "training steps per configuration")
flags.DEFINE_integer("reps", 3, "alternating repetitions of each variant")
flags.DEFINE_integer("online_configs", 64, "configurations (8 learning rates per seed)")
flags.DEFINE_string("out", "", "optional JSON file for the numbers")
flags.DEFINE_integer("cpu_devices", 0, "CPU devices the configurations are sharded over "
                     "(featcon.use_all_cpu_cores): 0 = one per core, as the entry points do")
FLAGS = flags.FLAGS

BATCH, WIDTH = 32, 512


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import featcon  # pylint: disable=import-outside-toplevel
  from featcon.theory import features, plan, runner  # pylint: disable=import-outside-toplevel

  featcon.use_all_cpu_cores(FLAGS.cpu_devices)
  roofline = jax_peak()
  steps, n_cfg = FLAGS.steps, FLAGS.online_configs
  flops = n_cfg * steps * 2 * (2 * BATCH * K * WIDTH)  # forward + weight gradient
  res = {"flags": {"steps": steps, "reps": FLAGS.reps, "online_configs": n_cfg},
         "jax_devices": jax.device_count(),
         "roofline_flops": roofline, "versions": featcon.versions(),
         "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
         "load_start": load(), "runs": []}
  print(f"roofline {roofline / 1e9:.0f} GFLOP/s", flush=True)
  cfg = workload_config("online", steps, 8, n_cfg)
  (group,) = plan.make_groups([featcon.resolve_config(c) for _, c in plan.expand(cfg)])
  programs = {}
  for share in (False, True):
    limits = runner.Limits(share_batches=share)
    size, n_chunks = runner.chunking(group, limits, jax.device_count())
    programs[share] = (limits, runner.compile_group(group, limits, progress=False))
    res[f"sharing_{share}"] = str(runner.batch_sharing(group, size, n_chunks) if share else None)
  for rep in range(FLAGS.reps):
    for share in (False, True):
      limits, prog = programs[share]
      t = time.perf_counter()
      runner.run_group(group, limits, progress=False, program=prog)
      s = time.perf_counter() - t
      r = {"rep": rep, "share_batches": share, "train_s": s, "ms_per_step": 1e3 * s / steps,
           "flops": flops / s, "fraction_of_roofline": flops / s / roofline}
      res["runs"].append(r)
      print(f"share_batches={share}: {s:.2f} s, {r['ms_per_step']:.3f} ms/step, "
            f"{r['flops'] / 1e9:.0f} GFLOP/s, {100 * r['fraction_of_roofline']:.0f} % of roofline",
            flush=True)
  # the draws alone: one step's batches for n_cfg configurations or for their 8 seeds
  kw = dict(k_core=group.static.k_core, k_bg=group.static.k_bg, core=group.static.core,
            dist=group.static.coeff_dist, radii=group.static.core_radii, rho=0.0,
            k_spurious=group.static.k_spurious)
  # threefry (featcon's generator) for every configuration and for the seeds only; JAX's
  # other generators (XLA's RngBitGenerator) for every configuration
  for impl, n_draws in (("threefry2x32", n_cfg), ("threefry2x32", n_cfg // 8),
                        ("rbg", n_cfg), ("unsafe_rbg", n_cfg)):
    keys = jax.random.split(jax.random.key(0, impl=impl), n_draws)

    def body(acc, t, keys=keys):
      b = jax.vmap(lambda k: features.sample(jax.random.fold_in(k, t), BATCH, shift=0.0,
                                             **kw))(keys)
      return acc + b.z.sum(), None

    f = jax.jit(lambda keys=keys, body=body: jax.lax.scan(body, 0.0, jnp.arange(steps))[0])
    f().block_until_ready()
    med, best = timed(lambda f=f: f().block_until_ready(), FLAGS.reps)
    res[f"draw_{impl}_{n_draws}_ms_per_step"] = 1e3 * best / steps
    print(f"draw {n_draws} batches ({impl}): {1e3 * best / steps:.3f} ms/step (median "
          f"{1e3 * med / steps:.3f})", flush=True)
  res["load_end"] = load()
  if FLAGS.out:
    write_result(FLAGS.out, res, indent=2)


if __name__ == "__main__":
  app.run(main)
