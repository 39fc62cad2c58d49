r"""featcon's jitted, vmapped sweeps against a plain PyTorch eager loop, side by side in one run.

  python -m benchmarks.theory_vs_torch                         # the full workloads
  python -m benchmarks.theory_vs_torch --steps=2000 --seeds=4  # a quick look

Workloads (same for both, same machine, same process):
* fig8: the public script's fixed set (n = 1000, d = m = 256, K_core = K_bg = 32, hinge,
  momentum SGD 0.9, lr 1e-3, weight decay 1e-3, frozen +-1/m output, the script's biases: hidden
  trained, output frozen at its initial value), seeds x {relu, identity},
  ID/OOD risk measured every 1000 steps (PyTorch: nn.Linear, torch.optim.SGD, full batch).
* online: batch 32, width 512, fresh batch each step, 64 configurations (seeds x lrs).
Timings are end to end (featcon's compile included). Also reported: featcon's compile time per
group, the achieved FLOP/s of the training matmuls in steady state (the ReLU group of fig8; the
identity group runs the linear shortcut), and this machine's measured matmul peak (JAX, f32).
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from absl import app, flags

import featcon
from benchmarks.common import K, N_EVAL, N_FIG8, workload_config
from featcon.theory import plan

flags.DEFINE_integer("steps", 20000, "training steps per configuration")
flags.DEFINE_integer("seeds", 8, "seeds per activation in the fig8 workload")
flags.DEFINE_integer("online_configs", 64, "configurations in the online workload")
flags.DEFINE_integer("torch_configs", 2, "if > 0, time only this many PyTorch configurations "
                     "and scale linearly (each is independent and equally costly); 0: all")
flags.DEFINE_list("workloads", ["fig8", "online"], "which workloads to run")
flags.DEFINE_string("out", "", "optional JSON file for the numbers")
flags.DEFINE_integer("cpu_devices", 0, "CPU devices featcon shards its configurations over "
                     "(featcon.use_all_cpu_cores): 0 = one per core, as the entry points do; "
                     "PyTorch is unaffected")
FLAGS = flags.FLAGS

D, N = 256, N_FIG8


def _torch_problem(seed, g):
  m = torch.linalg.qr(torch.randn(D, K, generator=g))[0]
  return m


def torch_fig8(seed, activation, steps, log_every=1000):
  g = torch.Generator().manual_seed(seed)
  mdict = _torch_problem(seed, g)
  y = torch.where(torch.arange(N) < N // 2, 1.0, -1.0)
  z = torch.cat([y[:, None] * torch.rand(N, 32, generator=g), torch.rand(N, 32, generator=g)], 1)
  x = z @ mdict.T
  ye = torch.where(torch.rand(N_EVAL, generator=g) < 0.5, 1.0, -1.0)
  ze = torch.cat([ye[:, None] * torch.rand(N_EVAL, 32, generator=g),
                  torch.rand(N_EVAL, 32, generator=g)], 1)
  xe = ze @ mdict.T
  xo = torch.cat([ze[:, :32], torch.rand(N_EVAL, 32, generator=g) - 1], 1) @ mdict.T
  hidden = torch.nn.Linear(D, 256)  # the public script's layers: biases at PyTorch's init,
  out = torch.nn.Linear(256, 1)     # the hidden one trained, the output layer frozen
  out.requires_grad_(False)
  with torch.no_grad():
    out.weight.copy_(torch.where(torch.arange(256) < 128, 1.0, -1.0)[None] / 256)
  act = torch.nn.ReLU() if activation == "relu" else torch.nn.Identity()
  net = lambda v: out(act(hidden(v)))[:, 0]
  opt = torch.optim.SGD(hidden.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-3)
  log = []
  for t in range(steps):
    opt.zero_grad()
    loss = torch.clamp(1 - y * net(x), min=0).mean()
    loss.backward()
    opt.step()
    if (t + 1) % log_every == 0:
      with torch.no_grad():
        log.append((torch.clamp(1 - ye * net(xe), min=0).mean().item(),
                    torch.clamp(1 - ye * net(xo), min=0).mean().item()))
  return log


def torch_online(seed, lr, steps, log_every=1000):
  g = torch.Generator().manual_seed(seed)
  mdict = _torch_problem(seed, g)
  hidden = torch.nn.Linear(D, 512)
  out = torch.nn.Linear(512, 1)
  out.requires_grad_(False)
  with torch.no_grad():
    out.weight.copy_(torch.where(torch.arange(512) < 256, 1.0, -1.0)[None] / 512)
  opt = torch.optim.SGD(hidden.parameters(), lr=lr, weight_decay=1e-3)
  ye = torch.where(torch.rand(N_EVAL, generator=g) < 0.5, 1.0, -1.0)
  xe = torch.cat([ye[:, None] * torch.rand(N_EVAL, 32, generator=g),
                  torch.rand(N_EVAL, 32, generator=g)], 1) @ mdict.T
  for t in range(steps):
    y = torch.where(torch.rand(32, generator=g) < 0.5, 1.0, -1.0)
    x = torch.cat([y[:, None] * torch.rand(32, 32, generator=g),
                   torch.rand(32, 32, generator=g)], 1) @ mdict.T
    opt.zero_grad()
    loss = torch.clamp(1 - y * out(torch.relu(hidden(x)))[:, 0], min=0).mean()
    loss.backward()
    opt.step()
    if (t + 1) % log_every == 0:
      with torch.no_grad():
        torch.clamp(1 - ye * out(torch.relu(hidden(xe)))[:, 0], min=0).mean().item()


def matmul_peak():
  a = jnp.ones((2048, 2048), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(10):
    f(a).block_until_ready()
  return 10 * 2 * 2048 ** 3 / (time.perf_counter() - t)


def main(argv):
  del argv
  featcon.use_all_cpu_cores(FLAGS.cpu_devices)
  torch.set_num_threads(max(1, torch.get_num_threads()))
  steps = FLAGS.steps
  res = {"steps": steps, "jax_devices": jax.device_count(), "versions": featcon.versions(),
         "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "peak_flops": matmul_peak()}
  if "fig8" in FLAGS.workloads:
    _fig8(res, steps)
  if "online" in FLAGS.workloads:
    _online(res, steps)
  for w in ("fig8_relu", "online"):
    if f"{w}_flops" in res:
      res[f"{w}_fraction_of_peak"] = res[f"{w}_flops"] / res["peak_flops"]
  print(json.dumps(res, indent=2))
  for w in ("fig8", "online"):
    if f"{w}_speedup" in res:
      frac = res.get(f"{w}_relu_fraction_of_peak", res.get(f"{w}_fraction_of_peak"))
      beside = res.get(f"{w}_compile_beside_training_s", 0.0)
      beside = f", {beside:.1f} s of it beside training" if beside else ""
      print(f"{w}: featcon {res[f'{w}_featcon_s']:.1f} s (compile {res[f'{w}_compile_s']:.1f} s{beside}), "
            f"PyTorch {res[f'{w}_torch_s']:.1f} s: {res[f'{w}_speedup']:.1f}x; training matmuls "
            f"at {100 * frac:.0f} % of the measured {res['peak_flops'] / 1e9:.0f} GFLOP/s peak "
            f"({res['jax_devices']} JAX device(s))")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(res, f, indent=2)


def _fig8(res, steps):
  cfg = workload_config("fig8", steps, FLAGS.seeds, 0)
  t = time.perf_counter()
  df = featcon.sweep(cfg)
  res["fig8_featcon_s"] = time.perf_counter() - t
  res["fig8_compile_s"] = sum(v["compile_s"] for v in df.attrs["timings"].values())
  # compiles that ran while another group trained (docs/sweeps.md, "What compiles")
  res["fig8_compile_beside_training_s"] = sum(
      v["compile_s"] for v in df.attrs["timings"].values() if v["compiled_ahead"])
  n_cfg = 2 * FLAGS.seeds
  # training matmuls of the ReLU group: forward Z P^T and gradient Z^T D, each 2 n K m flops
  # per step; the identity group runs the linear shortcut (O(nK) per step), so it is left out.
  groups = plan.make_groups([featcon.resolve_config(c) for _, c in plan.expand(cfg)])
  (relu,) = [df.attrs["timings"][g.key] for g in groups if g.static.activations == ("relu",)]
  res["groups"] = {k: dict(v) for k, v in df.attrs["timings"].items()}
  # wall_s holds the group's compile unless it compiled while the other group trained
  run_s = relu["wall_s"] - (0.0 if relu["compiled_ahead"] else relu["compile_s"])
  res["fig8_relu_group_run_s"] = run_s
  res["fig8_relu_flops"] = FLAGS.seeds * steps * 2 * (2 * N * K * 256) / run_s
  todo = [(s, a) for a in ("relu", "identity") for s in range(FLAGS.seeds)]
  if FLAGS.torch_configs:
    todo = todo[:FLAGS.torch_configs]
  t = time.perf_counter()
  for s, a in todo:
    torch_fig8(s, a, steps)
  res["fig8_torch_s"] = (time.perf_counter() - t) * n_cfg / len(todo)
  res["fig8_speedup"] = res["fig8_torch_s"] / res["fig8_featcon_s"]


def _online(res, steps):
  cfg = workload_config("online", steps, 0, FLAGS.online_configs)
  t = time.perf_counter()
  df = featcon.sweep(cfg)
  res["online_featcon_s"] = time.perf_counter() - t
  res["online_compile_s"] = sum(v["compile_s"] for v in df.attrs["timings"].values())
  (timing,) = df.attrs["timings"].values()
  res["online_chunks"] = f"{timing['chunks']} x {timing['chunk']}"
  # training matmuls (2 x 2 B K m per step and configuration) over the steady-state time
  res["online_flops"] = (timing["chunks"] * timing["chunk"] * steps * 2 * (2 * 32 * K * 512)
                         / (timing["wall_s"] - timing["compile_s"]))
  todo = [(s, lr) for s in range(FLAGS.online_configs // 8) for lr in np.geomspace(1e-3, 1e-1, 8)]
  if FLAGS.torch_configs:
    todo = todo[:FLAGS.torch_configs]
  t = time.perf_counter()
  for s, lr in todo:
    torch_online(s, float(lr), steps)
  res["online_torch_s"] = (time.perf_counter() - t) * FLAGS.online_configs / len(todo)
  res["online_speedup"] = res["online_torch_s"] / res["online_featcon_s"]


if __name__ == "__main__":
  app.run(main)
