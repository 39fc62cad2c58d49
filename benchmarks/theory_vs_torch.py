r"""featcon's sweeps against PyTorch, side by side in one process: the eager loop of the public
script and the strongest batched PyTorch implementation (``benchmarks/torch_theory.py``).

  python -m benchmarks.theory_vs_torch --out=runs/theory_vs_torch.json       # 20,000 steps
  python -m benchmarks.theory_vs_torch --steps=2000 --reps=1 --select_steps=20  # a quick look

Workloads (``benchmarks/common.py``): ``fig8`` (the public script's fixed set, n = 1000,
d = m = 256, K = 64, hinge, momentum SGD, seeds x {relu, identity}) and ``online`` (batch 32,
width 512, a fresh batch each step, seeds x 8 learning rates). For each workload, in this order:

1. *selection*: every batched PyTorch variant (``coords`` x ``grads`` x ``matmul`` x
   ``torch.compile``) trains ``--select_steps`` steps after a warm-up; the fastest variant in
   each coordinate system (input space, feature coordinates) is the baseline of step 2;
2. ``--reps`` rounds, alternating: featcon end to end (``featcon.sweep``: sampling, compile,
   training, measurements; JAX's persistent compilation cache in a fresh folder, so round 1
   compiles and round 2 reloads), then the best feature-coordinate and input-space PyTorch
   variants for ``--steps`` steps (their set-up and ``torch.compile`` included);
3. the eager loop (``nn.Linear``, autograd, ``torch.optim.SGD``) for ``--eager_configs``
   configurations x ``--eager_steps`` steps, scaled to all configurations and ``--steps``.

Every implementation's *fraction of the roofline* divides its training matmuls' FLOP/s
(forward and weight gradient, 2 x 2 n D m per configuration-step; D = K = 64 in feature
coordinates, d = 256 in input space; featcon's Figure-8 identity group runs the rank-one
linear shortcut and is left out of its count) by the roofline: the best 2048^2 float32 matmul
measured in this run among JAX's ``jnp.dot``, ``torch.mm`` (MKL) and oneDNN's inner product.
``uptime``'s load average is recorded before and after each part.
"""
import os
import tempfile
import time

import jax
import numpy as np
import torch
from absl import app, flags

import featcon
from benchmarks import torch_theory as tt
from benchmarks.common import K, N_FIG8, jax_peak, load, workload_config, write_result
from featcon import io
from featcon import jax_cache
from featcon.theory import plan

flags.DEFINE_integer("steps", 20000, "training steps per configuration")
flags.DEFINE_integer("seeds", 8, "seeds per activation in the fig8 workload")
flags.DEFINE_integer("online_configs", 64, "configurations in the online workload (8 per seed)")
flags.DEFINE_integer("reps", 2, "alternating rounds of featcon and the best PyTorch variants")
flags.DEFINE_integer("select_steps", 200, "steps each batched PyTorch variant is timed for "
                     "when choosing the best (after 5 warm-up steps)")
flags.DEFINE_integer("eager_steps", 1000, "steps the eager loop is timed for (per step, scaled)")
flags.DEFINE_integer("eager_configs", 2, "configurations the eager loop is timed for (scaled)")
flags.DEFINE_list("workloads", ["fig8", "online"], "which workloads to run")
flags.DEFINE_bool("torch_compile", True, "include torch.compile variants")
flags.DEFINE_string("out", "", "optional JSON file for the numbers (and <out>.md: the tables)")
flags.DEFINE_string("table_from", "", "only print the Markdown tables of this saved --out JSON")
flags.DEFINE_integer("cpu_devices", 0, "CPU devices featcon shards its configurations over "
                     "(featcon.use_all_cpu_cores): 0 = one per core, as the entry points do")
FLAGS = flags.FLAGS

N_LR = 8


def _featcon_flops(workload, steps, n_cfg):
  """featcon's training-matmul FLOPs (feature coordinates, K = 64)."""
  if workload == "fig8":   # the ReLU group only: seeds configurations
    return n_cfg // 2 * steps * 2 * (2 * N_FIG8 * K * 256)
  return n_cfg * steps * 2 * (2 * 32 * K * 512)


def run_featcon(workload, steps):
  """featcon end to end, with its compile and steady-state training times."""
  cfg = workload_config(workload, steps, FLAGS.seeds, FLAGS.online_configs)
  t = time.perf_counter()
  df = featcon.sweep(cfg, progress=False)
  wall = time.perf_counter() - t
  timings = df.attrs["timings"]
  out = {"wall_s": wall, "compile_s": sum(v["compile_s"] for v in timings.values()),
         "compile_stages_s": [v["compile_stages_s"] for v in timings.values()],
         "groups": {k: dict(v) for k, v in timings.items()}}
  groups = plan.make_groups([featcon.resolve_config(c) for _, c in plan.expand(cfg)])
  if workload == "fig8":
    (g,) = [timings[g.key] for g in groups if g.static.activations == ("relu",)]
    n_train = 2 * FLAGS.seeds
  else:
    (g,) = timings.values()
    n_train = g["chunks"] * g["chunk"]  # padded copies train too
  # wall_s holds the group's compile unless it compiled while the other group trained
  run_s = g["wall_s"] - (0.0 if g["compiled_ahead"] else g["compile_s"])
  out["train_s"] = run_s
  out["flops"] = _featcon_flops(workload, steps, n_train) / run_s
  return out


def _problems(workload):
  seeds = FLAGS.seeds if workload == "fig8" else FLAGS.online_configs // N_LR
  return [tt.problem(workload, s) for s in range(seeds)]


def _configs(workload):
  if workload == "fig8":
    return ("relu", "identity")
  return tuple(float(x) for x in np.geomspace(1e-3, 1e-1, N_LR))


def _variants():
  out = []
  for coords in tt.COORDS:
    for grads in tt.GRADS:
      for matmul in tt.MATMULS:
        for comp in ((False, True) if FLAGS.torch_compile else (False,)):
          if grads == "autograd" and matmul == "onednn":
            continue  # oneDNN's inner product has no backward
          if comp and matmul == "onednn":
            continue  # Inductor cannot lower torch.ops.mkldnn._linear_pointwise here
          out.append({"coords": coords, "grads": grads, "matmul": matmul, "compile": comp})
  return out


def run_torch(workload, probs, variant, steps, warmup=0):
  """One batched PyTorch variant: set-up (and compile) seconds, then ``steps`` timed."""
  t = time.perf_counter()
  b = tt.Batched(probs, _configs(workload), **variant)
  setup = time.perf_counter() - t
  if warmup:
    b.run(warmup, log_every=10 ** 9)
  t = time.perf_counter()
  b.run(steps, log_every=1000)
  run_s = time.perf_counter() - t
  return {**variant, "setup_s": setup, "train_s": run_s, "wall_s": setup + run_s,
          "flops": b.flops_per_step() * steps / run_s, "compile_error": b.compile_error,
          "compiled": b.compiled}


def run_eager(workload, probs, steps):
  """The eager loop for FLAGS.eager_configs configurations; seconds per configuration-step."""
  todo = [(s, c) for s in range(len(probs)) for c in _configs(workload)][:FLAGS.eager_configs]
  t = time.perf_counter()
  for s, c in todo:
    if workload == "fig8":
      tt.eager_fig8(probs[s], c, steps)
    else:
      tt.eager_online(probs[s], c, steps)
  return (time.perf_counter() - t) / (len(todo) * steps)


def workload_part(workload, res):
  steps = FLAGS.steps
  n_cfg = 2 * FLAGS.seeds if workload == "fig8" else FLAGS.online_configs
  probs = _problems(workload)
  part = {"configs": n_cfg, "steps": steps, "load_start": load()}
  # 1. selection
  sel = []
  for v in _variants():
    r = run_torch(workload, probs, v, FLAGS.select_steps, warmup=5)
    r["fraction_of_roofline"] = r["flops"] / res["roofline_flops"]
    sel.append(r)
    print(f"{workload} select {v}: {1e3 * r['train_s'] / FLAGS.select_steps:.2f} ms/step, "
          f"{r['flops'] / 1e9:.0f} GFLOP/s"
          + (f" (compile failed: {r['compile_error']})" if r["compile_error"] else ""),
          flush=True)
  part["selection"] = sel
  part["load_after_selection"] = load()
  best = {}
  for coords in tt.COORDS:
    cands = [r for r in sel if r["coords"] == coords]
    # the fastest per step (FLOPs differ only between coordinate systems)
    r = min(cands, key=lambda r: r["train_s"])
    best[coords] = {k: r[k] for k in ("coords", "grads", "matmul", "compile")}
  part["best_variants"] = best
  # 2. alternating rounds
  rounds = []
  for rep in range(FLAGS.reps):
    rnd = {"load_before": load()}
    rnd["featcon"] = run_featcon(workload, steps)
    for coords in tt.COORDS:
      rnd[f"torch_{coords}"] = run_torch(workload, probs, best[coords], steps)
    rnd["load_after"] = load()
    for coords in tt.COORDS:
      rnd[f"ratio_{coords}"] = rnd[f"torch_{coords}"]["wall_s"] / rnd["featcon"]["wall_s"]
      rnd[f"ratio_{coords}_steady"] = (rnd[f"torch_{coords}"]["train_s"]
                                       / rnd["featcon"]["train_s"])
    for name in ("featcon", "torch_input", "torch_feature"):
      rnd[name]["fraction_of_roofline"] = rnd[name]["flops"] / res["roofline_flops"]
    rounds.append(rnd)
    f = rnd["featcon"]
    print(f"{workload} round {rep + 1}: featcon {f['wall_s']:.1f} s (compile {f['compile_s']:.1f} s,"
          f" training {f['train_s']:.1f} s, {100 * f['fraction_of_roofline']:.0f} % of roofline);"
          + "".join(f" torch {c} {rnd[f'torch_{c}']['wall_s']:.1f} s ({rnd[f'ratio_{c}']:.2f}x, "
                    f"{100 * rnd[f'torch_{c}']['fraction_of_roofline']:.0f} %);"
                    for c in tt.COORDS) + f" load {rnd['load_after']}", flush=True)
  part["rounds"] = rounds
  # 3. the eager loop
  per_step = run_eager(workload, probs, FLAGS.eager_steps)
  part["eager_s_per_config_step"] = per_step
  part["eager_s"] = per_step * n_cfg * steps
  part["eager_ratio"] = [part["eager_s"] / r["featcon"]["wall_s"] for r in rounds]
  part["load_end"] = load()
  print(f"{workload} eager: {part['eager_s']:.0f} s scaled "
        f"({', '.join(f'{x:.1f}x' for x in part['eager_ratio'])})", flush=True)
  res[workload] = part


def _variant_name(v):
  return ", ".join([v["coords"], v["grads"], v["matmul"]] + (["compiled"] if v["compile"] else []))


def markdown(res):
  """The Markdown tables of a run's results (``--out`` JSON): per workload, the rounds (featcon
  end to end, its compile and training, the best batched PyTorch in both coordinate systems,
  ratios and fractions of the roofline), the eager loop, and every variant of the selection."""
  pct = lambda x: f"{100 * x:.0f} %"
  out = [f"Run {res['started']} – {res.get('finished', '?')}, load average at the start "
         f"{res['load_start'][0]}; roofline {res['roofline_flops'] / 1e9:.0f} GFLOP/s ("
         + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in res["peaks_flops"].items()) + ")."]
  for w in tt.WORKLOADS:
    if w not in res:
      continue
    part = res[w]
    best = part["best_variants"]
    out += ["", f"**{w}** ({part['configs']} configurations, {part['steps']} steps; best "
            f"variants: feature coordinates {_variant_name(best['feature'])}, input space "
            f"{_variant_name(best['input'])})", "",
            "| round | load before / after | featcon end to end (s) | compile (s) | featcon "
            "training (s) | of roofline | PyTorch feature coords (s) | ratio | of roofline | "
            "PyTorch input space (s) | ratio | of roofline |",
            "|" + "---|" * 12]
    for i, r in enumerate(part["rounds"]):
      f, tf, ti = r["featcon"], r["torch_feature"], r["torch_input"]
      out.append(
          f"| {i + 1} | {r['load_before'][0]} / {r['load_after'][0]} | {f['wall_s']:.1f} | "
          f"{f['compile_s']:.1f} | {f['train_s']:.1f} | {pct(f['fraction_of_roofline'])} | "
          f"{tf['wall_s']:.1f} | **{r['ratio_feature']:.2f}×** | "
          f"{pct(tf['fraction_of_roofline'])} | {ti['wall_s']:.1f} | "
          f"**{r['ratio_input']:.2f}×** | {pct(ti['fraction_of_roofline'])} |")
    out += ["", f"Eager loop: {1e3 * part['eager_s_per_config_step']:.3f} ms per config-step; "
            f"scaled to {part['configs']} × {part['steps']} steps {part['eager_s']:.0f} s, "
            + " and ".join(f"{x:.1f}×" for x in part["eager_ratio"]) + " featcon's rounds.",
            "", f"Every batched PyTorch variant ({w}, {res['flags']['select_steps']} steps each "
            "after 5 warm-up steps):", "",
            "| variant | set-up incl. compile (s) | ms/step | GFLOP/s | of roofline |",
            "|---|---|---|---|---|"]
    n = res["flags"]["select_steps"]
    for v in part["selection"]:
      out.append(f"| {_variant_name(v)} | {v['setup_s']:.1f} | {1e3 * v['train_s'] / n:.2f} | "
                 f"{v['flops'] / 1e9:.0f} | {pct(v['fraction_of_roofline'])} |")
  return "\n".join(out) + "\n"


def main(argv):
  del argv
  if FLAGS.table_from:
    print(markdown(io.read_json(FLAGS.table_from)), end="")
    return
  for w in FLAGS.workloads:
    if w not in tt.WORKLOADS:
      raise app.UsageError(f"--workloads={w!r}; allowed: {', '.join(tt.WORKLOADS)}")
  featcon.use_all_cpu_cores(FLAGS.cpu_devices)
  torch.set_num_threads(max(1, torch.get_num_threads()))
  cache = tempfile.mkdtemp(prefix="featcon-bench-cache-")
  jax_cache.enable(cache)  # fresh: round 1 compiles, later rounds reload
  res = {"flags": {k: FLAGS[k].value for k in ("steps", "seeds", "online_configs", "reps",
                                               "select_steps", "eager_steps", "eager_configs")},
         "jax_devices": jax.device_count(), "versions": featcon.versions(),
         "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
         "load_start": load(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
  peaks = {"jax": jax_peak(), **{f"torch_{k}": v for k, v in tt.torch_peak().items()}}
  res["peaks_flops"] = peaks
  res["roofline_flops"] = max(peaks.values())
  print(f"roofline {res['roofline_flops'] / 1e9:.0f} GFLOP/s ("
        + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peaks.items()) + f"), load {load()}",
        flush=True)
  for w in FLAGS.workloads:
    workload_part(w, res)
    res["load_end"] = load()
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if FLAGS.out:  # after each workload, so a stopped run keeps the finished ones
      write_result(FLAGS.out, res, indent=2, default=str)
      io.atomic_write(os.path.splitext(FLAGS.out)[0] + ".md", lambda f: f.write(markdown(res)))


if __name__ == "__main__":
  app.run(main)
