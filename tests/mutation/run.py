"""Mutation testing of the core formulas: does the suite notice a small, plausible bug?

Each mutation replaces one exact snippet of a source file in a scratch copy of the working tree
(``shutil.copytree`` into a temporary directory, without ``.git``, ``.venv`` or run outputs),
runs the relevant tests there (a small subset, seconds to a minute each) and counts the
mutation as *caught* when they fail. Survivors are printed and the exit status is 1 if any.
Not part of ``make test``; its last result is recorded in docs/testing.md. The deep stage's
mutations are listed in tests/mutation/deep.py and appended to ``MUTATIONS``.

  python tests/mutation/run.py                 # every mutation
  python tests/mutation/run.py --only hinge_sign,distill_sign
  python tests/mutation/run.py --list
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

T = "tests/theory/"
# (name, file, original snippet, mutated snippet, tests to run: pytest arguments)
MUTATIONS = [
    # losses (Section 3.2)
    ("hinge_sign", "featcon/theory/losses.py", "relu(1.0 - y * f)", "relu(-y * f)",
     [T + "test_losses.py"]),
    ("hinge_margin", "featcon/theory/losses.py", "relu(1.0 - y * f)", "relu(1.0 + y * f)",
     [T + "test_losses.py"]),
    ("logistic_sign", "featcon/theory/losses.py", "softplus(-y * f)", "softplus(y * f)",
     [T + "test_losses.py"]),
    ("mse_sum_not_mean", "featcon/theory/losses.py", "jnp.mean(jnp.square(f - target), axis=-1)",
     "jnp.sum(jnp.square(f - target), axis=-1)", [T + "test_losses.py"]),
    ("zero_one_ties", "featcon/theory/losses.py", "(y * f <= 0)", "(y * f < 0)",
     [T + "test_losses.py"]),
    # feature model (Definition 3.1)
    ("k_core_k_bg_swap", "featcon/theory/features.py",
     "zc = core_block(kc, y, k_core, core, dist, radii)\n  zb = background_block(kb, n, k_bg, shift, dist, y,",
     "zc = core_block(kc, y, k_bg, core, dist, radii)\n  zb = background_block(kb, n, k_core, shift, dist, y,",
     [T + "test_features.py"]),
    ("core_label_free", "featcon/theory/features.py", "return y[:, None] * coefficients",
     "return coefficients", [T + "test_features.py"]),
    ("shift_sign", "featcon/theory/features.py", "coefficients(key, (n, k_bg), dist) - shift",
     "coefficients(key, (n, k_bg), dist) + shift", [T + "test_features.py"]),
    ("spurious_not_reversed", "featcon/theory/features.py",
     "((1.0 - 2.0 * jnp.asarray(shift, jnp.float32)) * rho)", "rho",
     [T + "test_spurious.py", "-k", "closed_form"]),
    ("spurious_all_background", "featcon/theory/features.py",
     "sp = (jnp.arange(k_bg) < k_spurious)", "sp = (jnp.arange(k_bg) >= 0)",
     [T + "test_spurious.py", "-k", "closed_form"]),
    # network
    ("gelu_tanh_approx", "featcon/theory/network.py", "jax.nn.gelu(u, approximate=False)",
     "jax.nn.gelu(u, approximate=True)", [T + "test_network.py", "-k", "closed_forms"]),
    ("init_scale_no_sqrt", "featcon/theory/network.py", "init_scale / jnp.sqrt(jnp.float32(fan_in))",
     "init_scale / jnp.float32(fan_in)", [T + "test_network.py", "-k", "init_scales"]),
    ("deeper_layer_linear", "featcon/theory/network.py",
     "    h = sigma(u)\n    if mask is not None:", "    h = u\n    if mask is not None:",
     [T + "test_layer_metrics.py", "-k", "finite and tanh"]),
    ("train_layers_ignored", "featcon/theory/network.py", 'return deeper and train_layers == "all"',
     "return deeper", [T + "test_depth.py", "-k", "pytorch and first"]),
    ("deeper_init_fan_in_d", "featcon/theory/network.py",
     "wl, bl = deeper_layer(jax.random.fold_in(key, l), m=m, width=width,",
     "wl, bl = deeper_layer(jax.random.fold_in(key, l), m=m, width=fan_in,",
     [T + "test_depth.py", "-k", "prefix_consistent"]),
    # measurements ("What to measure")
    ("bg_signed_norm", "featcon/theory/metrics.py", "(msum * max(k_bg, 1))", "msum",
     [T + "test_metrics.py"]),
    ("core_corr_l1", "featcon/theory/metrics.py", "core = jnp.linalg.norm(P[:, :k_core], axis=1)",
     "core = jnp.sum(jnp.abs(P[:, :k_core]), axis=1)", [T + "test_metrics.py"]),
    ("corr_mask_ignored", "featcon/theory/metrics.py", "jnp.sum(mask * core) / msum",
     "jnp.mean(core)", [T + "test_metrics.py"]),
    ("core_align_unsigned", "featcon/theory/metrics.py", "jnp.sum(mask * sign_a * jnp.mean",
     "jnp.sum(mask * jnp.mean", [T + "test_metrics.py"]),
    ("act_rate_gap_no_abs", "featcon/theory/metrics.py", "jnp.abs(p_pos - p_neg)",
     "(p_pos - p_neg)", [T + "test_metrics.py"]),
    ("asym_strict", "featcon/theory/metrics.py", "(h_neg > 0).astype(jnp.float32)) <= 1",
     "(h_neg > 0).astype(jnp.float32)) < 1", [T + "test_metrics.py"]),
    ("class_counts_swapped", "featcon/theory/metrics.py",
     "npos = jnp.maximum(counts[0], 1.0)\n  nneg = jnp.maximum(counts[1], 1.0)",
     "nneg = jnp.maximum(counts[0], 1.0)\n  npos = jnp.maximum(counts[1], 1.0)",
     [T + "test_metrics.py"]),
    ("eval_rows_left_unmeasured", "featcon/theory/metrics.py", "  if n > full * block:",
     "  if False:", [T + "test_metrics.py"]),
    ("sens_mask_ignored", "featcon/theory/metrics.py", "jac = jac * mask[None, :, None]",
     "jac = jac", [T + "test_layer_metrics.py", "-k", "finite and tanh"]),
    ("sens_sum_not_mean", "featcon/theory/metrics.py", 'out[f"sens_bg_l{l}"] = jnp.mean(sq[k_core:])',
     'out[f"sens_bg_l{l}"] = jnp.sum(sq[k_core:])', [T + "test_layer_metrics.py", "-k", "finite and tanh"]),
    ("ood_move_no_sqrt", "featcon/theory/metrics.py", "jnp.sqrt(move / base)", "move / base",
     [T + "test_layer_metrics.py", "-k", "finite and tanh"]),
    # training (feature path: decay of the orthogonal part with momentum)
    ("perp_no_momentum", "featcon/theory/train.py", "dyn.weight_decay * alpha + dyn.momentum * beta",
     "dyn.weight_decay * alpha", [T + "test_train.py", "-k", "paths_agree and momentum and not nobias and not oracle"]),
    # shared online batches (sweep.share_batches): each stream's configurations, its batch
    ("share_layout_swapped", "featcon/theory/runner.py",
     "  def split(a):  # (size, ...) -> (streams, L, ...)\n    if sharing.blocked:",
     "  def split(a):  # (size, ...) -> (streams, L, ...)\n    if not sharing.blocked:",
     [T + "test_share_batches.py", "-k", "strided"]),
    ("share_lr_unbatched", "featcon/theory/runner.py", 'BATCH_FIELDS = ("seed", "bg_label_corr")',
     'BATCH_FIELDS = ("seed", "bg_label_corr", "lr")', [T + "test_share_batches.py", "-k", "blocked"]),
    # distillation objective (Section 2)
    ("distill_sign", "featcon/distill/student.py", "jnp.square(s_emb - t_emb)",
     "jnp.square(s_emb + t_emb)", ["tests/distill/test_objective.py", "-k", "hand"]),
    ("block_weight_ignored", "featcon/distill/student.py", "return final + block_weight * block",
     "return final + block", ["tests/distill/test_objective.py", "-k", "hand"]),
    ("block_terms_dropped", "featcon/distill/student.py", "return final + block_weight * block",
     "return final + 0 * block", ["tests/distill/test_objective.py", "-k", "hand"]),
    # CLIP port and probes
    ("bn_eps", "featcon/layers.py", "BN_EPS = 1e-5", "BN_EPS = 1e-3",
     ["tests/clip/test_parity.py", "-k", "fp64 and tiny-rn"]),
    ("ridge_lambda_not_relative", "featcon/probe/ridge.py", "[lam * n for lam in lambdas]",
     "[lam for lam in lambdas]", ["tests/distill/test_metrics.py", "-k", "ridge"]),
    ("effective_robustness_sign", "featcon/probe/metrics.py", "np.float64) - pred",
     "np.float64) + pred", ["tests/distill/test_metrics.py", "-k", "effective"]),
]

# The deep stage's definitions (tests/mutation/deep.py), after the theory's.
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
from tests.mutation import deep  # noqa: E402  pylint: disable=wrong-import-position
MUTATIONS += deep.MUTATIONS

_IGNORE = shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", ".pytest_cache",
                                 "*.egg-info", "wandb")


def run_one(name, path, old, new, tests, python, timeout):
  """Applies one mutation in a scratch copy and runs its tests; returns (status, seconds)."""
  with tempfile.TemporaryDirectory(prefix=f"mutant_{name}_") as tmp:
    scratch = os.path.join(tmp, "repo")
    shutil.copytree(ROOT, scratch, ignore=_IGNORE)
    target = os.path.join(scratch, path)
    with open(target) as f:
      src = f.read()
    if src.count(old) != 1:
      return f"snippet found {src.count(old)} times (expected 1)", 0.0
    with open(target, "w") as f:
      f.write(src.replace(old, new))
    t0 = time.time()
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONDONTWRITEBYTECODE="1")
    env.pop("CI", None)
    try:
      r = subprocess.run([python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"] + tests,
                         cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
      return "timeout", time.time() - t0
    dt = time.time() - t0
    if r.returncode == 0:
      return "SURVIVED", dt
    if r.returncode == 1:
      return "caught", dt
    return f"error (pytest exit {r.returncode}): {r.stdout[-300:]}", dt


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--only", default="", help="comma-separated mutation names")
  p.add_argument("--list", action="store_true", help="list the mutations and exit")
  p.add_argument("--python", default=sys.executable)
  p.add_argument("--timeout", type=float, default=900)
  args = p.parse_args(argv)
  names = [m[0] for m in MUTATIONS]
  assert len(set(names)) == len(names)
  if args.list:
    for name, path, _, _, tests in MUTATIONS:
      print(f"{name:28s} {path:32s} {' '.join(tests)}")
    return 0
  only = set(filter(None, args.only.split(",")))
  unknown = only - set(names)
  if unknown:
    raise ValueError(f"--only={args.only!r}: unknown mutation(s) {sorted(unknown)}; "
                     f"allowed: {names}")
  rows = []
  for m in MUTATIONS:
    if only and m[0] not in only:
      continue
    status, dt = run_one(*m, python=args.python, timeout=args.timeout)
    rows.append((m[0], status, dt))
    print(f"{m[0]:28s} {status:10s} {dt:6.1f}s", flush=True)
  survivors = [r for r in rows if r[1] != "caught"]
  print(f"\n{len(rows) - len(survivors)}/{len(rows)} caught"
        + (f"; not caught: {', '.join(r[0] for r in survivors)}" if survivors else ""))
  return 1 if survivors else 0


if __name__ == "__main__":
  sys.exit(main())
