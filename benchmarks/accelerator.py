r"""One accelerator check: throughput against the device's own peak, CLIP against open_clip, a
distillation step and the fast tests, into one JSON and one Markdown table.

  pip install -e ".[cuda]"                                   # JAX's CUDA 12 wheels
  python -m benchmarks.accelerator --out=runs/accelerator    # one GPU, under 8 minutes
  python -m benchmarks.accelerator --out=/tmp/acc --reduced  # CPU, seconds (the test)

Parts (``--parts``, all by default):
* peak: a large matmul in float32 and bfloat16 (FLOP/s, the denominators below);
* theory: the Figure 8 and online workloads of ``benchmarks/theory_vs_torch.py`` at full size
  (20,000 steps) and a 4,096-configuration online sweep (``benchmarks/scaling.py``), each as
  configuration-steps per second and the fraction of the float32 peak its training matmuls
  reach (steady state: compile time taken out); then the batched PyTorch baseline of both
  workloads (``benchmarks/torch_theory.py``, input space and feature coordinates,
  ``torch.compile``, 2,000 steps) on the same GPU when torch has CUDA, with the same two
  numbers and featcon's rate over it;
* clip: RN50 and ViT-B/16 forward at batch 256 in float32 and bfloat16, featcon (jit) and
  open_clip (PyTorch, eval, same weights, same device when torch sees a GPU), images/s;
* distill: one representation-distillation step (RN50 teacher and student, batch 256, AdamW),
  images/s;
* tests: ``pytest -m "not heavy"`` over the fast subset (theory, models, data, io), pass/fail
  and seconds.

``--reduced`` shrinks every part (tiny encoders, a few hundred steps, small matmuls) so that
the whole script runs on a CPU in well under a minute; its numbers only show the script works.
Writes ``accelerator.json`` and ``accelerator.md`` into ``--out``.
"""
import json
import os
import platform
import subprocess
import sys
import time

from absl import app, flags

from benchmarks.common import K, N_EVAL, N_FIG8, timed, workload_config
from featcon import distributed

flags.DEFINE_string("out", None, "Folder for accelerator.json and accelerator.md.",
                    required=True)
flags.DEFINE_bool("reduced", False, "Small sizes: a CPU check that the script runs.")
flags.DEFINE_list("parts", ["peak", "theory", "clip", "distill", "tests"], "Parts to run.")
flags.DEFINE_integer("test_timeout_s", 180, "Limit of the test part.")
FLAGS = flags.FLAGS

PARTS = ("peak", "theory", "clip", "distill", "tests")
TEST_SUBSET = ["tests/theory", "tests/models", "tests/data", "tests/test_io.py"]


def peak(reduced):
  """Measured matmul FLOP/s in float32 and bfloat16 (the best of several runs)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  n = 512 if reduced else 8192
  out = {"matmul_n": n}
  for name, dtype in (("f32", jnp.float32), ("bf16", jnp.bfloat16)):
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = timed(lambda: f(a).block_until_ready(), 3 if reduced else 10)[1]
    out[f"peak_{name}_flops"] = 2 * n ** 3 / best
  return out


def theory(reduced, peak_f32):
  """The theory workloads: configuration-steps/s and fraction of the float32 matmul peak."""
  import featcon  # pylint: disable=g-import-not-at-top
  steps = 200 if reduced else 20000
  k, n_fig8, m = K, N_FIG8, 256
  n_eval = 256 if reduced else N_EVAL
  # Reduced: the 4,096-configuration sweep becomes the online workload again (one compile,
  # served from the compilation cache the second time).
  big, big_steps = (8, steps) if reduced else (4096, 2000)
  work = {
      # name: (config, training-matmul FLOPs per configuration-step: forward and gradient,
      # 2 x 2 rows x K x width)
      "fig8": (workload_config("fig8", steps, 2 if reduced else 8, 0, n_eval),
               2 * 2 * n_fig8 * k * m),
      "online": (workload_config("online", steps, 0, 8 if reduced else 64, n_eval),
                 2 * 2 * 32 * k * 512),
      "online_4096": (workload_config("online", big_steps, 0, big, n_eval),
                      2 * 2 * 32 * k * 512),
  }
  out = {}
  for name, (cfg, flops_per) in work.items():
    t = time.perf_counter()
    df = featcon.sweep(cfg)
    wall = time.perf_counter() - t
    timings = df.attrs["timings"].values()
    # compiles that overlapped an earlier group's training (compiled_ahead) cost no wall time
    compile_s = sum(v["compile_s"] for v in timings if not v.get("compiled_ahead"))
    n_cfg = sum(v["configs"] for v in timings)
    n_steps = cfg["train"]["steps"]
    run_s = max(wall - compile_s, 1e-9)
    rate = n_cfg * n_steps / run_s
    out[name] = {"configs": n_cfg, "steps": n_steps, "wall_s": wall, "compile_s": compile_s,
                 "config_steps_per_s": rate, "matmul_flops": rate * flops_per,
                 "fraction_of_f32_peak": rate * flops_per / peak_f32}
    if name == "fig8":  # the identity group runs the linear shortcut: FLOPs of half the group
      out[name]["matmul_flops"] /= 2
      out[name]["fraction_of_f32_peak"] /= 2
  return out


def theory_torch(reduced, peak_f32, featcon_rates):
  """The batched PyTorch baseline (``benchmarks/torch_theory.py``) of the fig8 and online
  workloads on the same device, in input space and in feature coordinates (hand-written
  gradients; ``torch.compile`` where it builds): configuration-steps/s, fraction of the float32
  peak, and featcon's rate over it (``featcon_rates``: :func:`theory`'s results)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_theory as tt  # pylint: disable=g-import-not-at-top
  dev = "cuda" if torch.cuda.is_available() else "cpu"
  steps = 200 if reduced else 2000
  n_eval = 256 if reduced else N_EVAL
  sizes = {"fig8": (2 if reduced else 8, ("relu", "identity")),
           "online": (1 if reduced else 8, tuple(float(x) for x in np.geomspace(1e-3, 1e-1, 8)))}
  rows = []
  for workload, (seeds, configs) in sizes.items():
    probs = [tt.problem(workload, s, n_eval=n_eval) for s in range(seeds)]
    for coords in tt.COORDS:
      t = time.perf_counter()
      b = tt.Batched(probs, configs, coords=coords, grads="hand", compile=not reduced,
                     device=dev)
      setup_s = time.perf_counter() - t
      b.run(5, log_every=10 ** 9)
      t = time.perf_counter()
      b.run(steps)
      run_s = time.perf_counter() - t
      rate = seeds * len(configs) * steps / run_s
      flops = b.flops_per_step() * steps / run_s
      row = {"workload": workload, "coords": coords, "configs": seeds * len(configs),
             "steps": steps, "device": dev, "setup_s": setup_s, "compiled": b.compiled,
             "compile_error": b.compile_error, "config_steps_per_s": rate,
             "matmul_flops": flops, "fraction_of_f32_peak": flops / peak_f32}
      if workload in featcon_rates:
        row["featcon_over_torch"] = featcon_rates[workload]["config_steps_per_s"] / rate
      rows.append(row)
  return rows


def clip_forward(reduced):
  """featcon.clip vs open_clip forward throughput, float32 and bfloat16."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from featcon.testing import clip_reference as reference  # pylint: disable=g-import-not-at-top
  names = ("tiny-rn", "tiny-vit") if reduced else ("RN50", "ViT-B/16")
  batch, reps = (4, 2) if reduced else (256, 10)
  dev = "cuda" if torch.cuda.is_available() else "cpu"
  rows = []
  for name in names:
    tm, module, variables, x = reference.tower_pair(name, batch)
    for dname, jdt, tdt in (("float32", jnp.float32, torch.float32),
                            ("bfloat16", jnp.bfloat16, torch.bfloat16)):
      v = jax.tree.map(lambda a: jnp.asarray(a, jdt), variables)
      xj = jnp.asarray(x, jdt)
      fwd = jax.jit(lambda v, x: module.apply(v, x)[0])
      t = time.perf_counter()
      jax.block_until_ready(fwd(v, xj))
      compile_s = time.perf_counter() - t
      jax_s = timed(lambda: jax.block_until_ready(fwd(v, xj)), reps)[0]
      m = tm.to(device=dev, dtype=tdt).eval()
      xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(dev, tdt)
      def run_torch():
        with torch.inference_mode():
          m(xt)
        if dev == "cuda":
          torch.cuda.synchronize()
      run_torch()
      torch_s = timed(run_torch, reps)[0]
      rows.append({"model": name, "dtype": dname, "batch": batch, "compile_s": compile_s,
                   "featcon_images_per_s": batch / jax_s, "open_clip_images_per_s": batch / torch_s,
                   "speedup": torch_s / jax_s, "torch_device": dev})
  return rows


def distill_step(reduced):
  """Images/s of one jitted distillation step (frozen teacher, student, MSE, AdamW)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from featcon import clip, distill, models  # pylint: disable=g-import-not-at-top
  from featcon import training as train_lib  # pylint: disable=g-import-not-at-top
  name = "tiny-rn" if reduced else "RN50"
  batch, reps = (8, 2) if reduced else (256, 10)
  enc = models.make_encoder(name)
  size = clip.get_config(name).image_size
  tvars = train_lib.init_variables(enc, size, 0)
  svars = train_lib.init_variables(enc, size, 1)
  tx = train_lib.make_optimizer(1e-4, 0.05, 1000, 10)
  state = train_lib.new_state(svars["params"], svars.get("batch_stats"), tx)

  def step(state, x, tvars):
    t_emb, t_inter = jax.lax.stop_gradient(enc.apply(tvars, x, train=False))
    def loss_fn(p):
      s_emb, s_inter, upd = train_lib.apply_train(enc, p, state.get("batch_stats"), x)
      return distill.distill_loss(s_emb, s_inter, t_emb, t_inter, 0.0)[0], upd
    (loss, upd), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    return train_lib.apply_updates(state, grads, upd, tx), loss

  jstep = jax.jit(step, donate_argnums=(0,))
  x = jax.random.normal(jax.random.key(0), (batch, size, size, 3))
  t = time.perf_counter()
  state, loss = jstep(state, x, tvars)
  jax.block_until_ready(loss)
  compile_s = time.perf_counter() - t
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    state, loss = jstep(state, x, tvars)
    jax.block_until_ready(loss)
    times.append(time.perf_counter() - t)
  times.sort()
  return {"model": name, "batch": batch, "compile_s": compile_s,
          "images_per_s": batch / times[len(times) // 2]}


def run_tests(timeout_s):
  """The fast test subset on this machine's default device."""
  cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not heavy", "-p", "no:cacheprovider",
         *TEST_SUBSET]
  t = time.perf_counter()
  try:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-300:]
    ok = p.returncode == 0
  except subprocess.TimeoutExpired:
    tail, ok = f"stopped after {timeout_s}s", False
  return {"command": " ".join(cmd[1:]), "passed": ok, "summary": tail,
          "seconds": time.perf_counter() - t}


def markdown(res):
  """The Markdown table of a result dict."""
  lines = [f"# Accelerator check ({res['device']}, {'reduced' if res['reduced'] else 'full'})",
           ""]
  if "peak" in res:
    p = res["peak"]
    lines += [f"Matmul peak ({p['matmul_n']}²): float32 {p['peak_f32_flops'] / 1e12:.2f} "
              f"TFLOP/s, bfloat16 {p['peak_bf16_flops'] / 1e12:.2f} TFLOP/s", ""]
  if "theory" in res:
    lines += ["| workload | configs × steps | wall (s) | compile (s) | config-steps/s | "
              "matmul TFLOP/s | of f32 peak |", "|---|---|---|---|---|---|---|"]
    for k, v in res["theory"].items():
      lines.append(f"| {k} | {v['configs']} × {v['steps']} | {v['wall_s']:.1f} | "
                   f"{v['compile_s']:.1f} | {v['config_steps_per_s']:.3g} | "
                   f"{v['matmul_flops'] / 1e12:.3f} | {100 * v['fraction_of_f32_peak']:.1f} % |")
    lines.append("")
  if "theory_torch" in res:
    lines += ["Batched PyTorch baseline (benchmarks/torch_theory.py, hand-written gradients):", "",
              "| workload | coordinates | configs × steps | device | compiled | config-steps/s | "
              "matmul TFLOP/s | of f32 peak | featcon / PyTorch |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in res["theory_torch"]:
      ratio = f"{r['featcon_over_torch']:.2f}×" if "featcon_over_torch" in r else "–"
      lines.append(f"| {r['workload']} | {r['coords']} | {r['configs']} × {r['steps']} | "
                   f"{r['device']} | {'yes' if r['compiled'] else 'no'} | "
                   f"{r['config_steps_per_s']:.3g} | {r['matmul_flops'] / 1e12:.3f} | "
                   f"{100 * r['fraction_of_f32_peak']:.1f} % | {ratio} |")
    lines.append("")
  if "clip" in res:
    lines += ["| model | dtype | batch | featcon images/s | open_clip images/s | speedup | "
              "compile (s) |", "|---|---|---|---|---|---|---|"]
    for r in res["clip"]:
      lines.append(f"| {r['model']} | {r['dtype']} | {r['batch']} | "
                   f"{r['featcon_images_per_s']:.1f} | {r['open_clip_images_per_s']:.1f} "
                   f"({r['torch_device']}) | {r['speedup']:.2f}× | {r['compile_s']:.1f} |")
    lines.append("")
  if "distill" in res:
    d = res["distill"]
    lines += [f"Distillation step ({d['model']}, batch {d['batch']}): "
              f"{d['images_per_s']:.1f} images/s (compile {d['compile_s']:.1f} s)", ""]
  if "tests" in res:
    t = res["tests"]
    lines += [f"Tests (`{t['command']}`): {'passed' if t['passed'] else 'FAILED'} — "
              f"{t['summary']} ({t['seconds']:.0f} s)", ""]
  return "\n".join(lines)


def main(argv):
  del argv
  bad = [p for p in FLAGS.parts if p not in PARTS]
  if bad:
    raise ValueError(f"parts={FLAGS.parts}: {bad} not allowed; allowed: {', '.join(PARTS)}")
  distributed.initialize(cpu_devices=1, distributed="no")
  import jax  # pylint: disable=g-import-not-at-top
  from featcon import io  # pylint: disable=g-import-not-at-top
  from featcon import training as train_lib  # pylint: disable=g-import-not-at-top
  train_lib.enable_compilation_cache()
  t0 = time.perf_counter()
  dev = jax.devices()[0]
  res = {"reduced": FLAGS.reduced, "device": getattr(dev, "device_kind", str(dev)),
         "platform": dev.platform, "host": platform.node(), "versions": io.versions()}
  pk = peak(FLAGS.reduced)
  if "peak" in FLAGS.parts:
    res["peak"] = pk
  if "theory" in FLAGS.parts:
    res["theory"] = theory(FLAGS.reduced, pk["peak_f32_flops"])
    res["theory_torch"] = theory_torch(FLAGS.reduced, pk["peak_f32_flops"], res["theory"])
  if "clip" in FLAGS.parts:
    res["clip"] = clip_forward(FLAGS.reduced)
  if "distill" in FLAGS.parts:
    res["distill"] = distill_step(FLAGS.reduced)
  if "tests" in FLAGS.parts:
    res["tests"] = run_tests(FLAGS.test_timeout_s)
  res["total_s"] = time.perf_counter() - t0
  os.makedirs(FLAGS.out, exist_ok=True)
  io.write_json(os.path.join(FLAGS.out, "accelerator.json"), res, indent=1)
  md = markdown(res)
  io.atomic_write(os.path.join(FLAGS.out, "accelerator.md"), lambda f: f.write(md + "\n"))
  print(md)


if __name__ == "__main__":
  app.run(main)
