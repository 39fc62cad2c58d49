"""Forward throughput of the Flax CLIP image towers vs open_clip (PyTorch eager), side by side.

Run from the repository root (needs the ``clip`` extras: torch, torchvision, open_clip):

    python -m benchmarks.clip_throughput [--models RN50 ViT-B/16] [--batches 8 32] [--reps 5]

Both frameworks get the same random weights (open_clip tower converted with
``featcon.clip.to_flax_variables``) and the same inputs; the embeddings are also compared. Flax is
timed under ``jax.jit`` (embedding only; compile time reported separately), torch in eval mode
under ``torch.inference_mode()``. Reports the median seconds per batch and images/s, and writes
one JSON line per (model, batch) to ``--out`` if given. Results: ``docs/performance.md``.
"""
import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks.common import timed
from featcon.testing import clip_reference as reference


def bench(name, batch, reps, warmup=2):
  """Time one (model, batch) pair in both frameworks; returns a dict of measurements."""
  tm, module, variables, x = reference.tower_pair(name, batch)
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  xj = jnp.asarray(x)
  fwd = jax.jit(lambda v, x: module.apply(v, x)[0])
  t = time.perf_counter()
  out_j = jax.block_until_ready(fwd(variables, xj))
  compile_s = time.perf_counter() - t

  def run_torch():
    with torch.inference_mode():
      return tm(xt)

  for _ in range(warmup):
    out_t = run_torch()
    jax.block_until_ready(fwd(variables, xj))
  # Interleave the two frameworks' timings so both see the same machine state.
  tt, tj = [], []
  for _ in range(reps):
    tt.append(timed(run_torch, 1)[0])
    tj.append(timed(lambda: jax.block_until_ready(fwd(variables, xj)), 1)[0])
  res = dict(model=name, batch=batch, reps=reps,
             torch_s=float(np.median(tt)), flax_s=float(np.median(tj)),
             torch_min_s=float(np.min(tt)), flax_min_s=float(np.min(tj)),
             flax_compile_s=compile_s,
             rel_err=reference.rel_err(np.asarray(out_j), out_t.numpy()))
  res["speedup"] = res["torch_s"] / res["flax_s"]
  return res


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="+", default=["RN50", "ViT-B/16"])
  p.add_argument("--batches", nargs="+", type=int, default=[8, 32])
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--out", default=None)
  args = p.parse_args()
  print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__}")
  print(f"{'model':10s} {'batch':>5s} {'torch s':>8s} {'flax s':>8s} {'torch im/s':>10s} "
        f"{'flax im/s':>10s} {'flax/torch':>10s} {'compile s':>9s} {'rel err':>8s}")
  rows = []
  for name in args.models:
    for b in args.batches:
      r = bench(name, b, args.reps)
      rows.append(r)
      print(f"{name:10s} {b:5d} {r['torch_s']:8.3f} {r['flax_s']:8.3f} {b / r['torch_s']:10.1f} "
            f"{b / r['flax_s']:10.1f} {r['speedup']:10.2f} {r['flax_compile_s']:9.1f} "
            f"{r['rel_err']:8.1e}", flush=True)
  if args.out:
    with open(args.out, "w") as f:
      for r in rows:
        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
  main()
