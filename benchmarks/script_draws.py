"""Initial-state statistics of the Fig-10 script setting: PyTorch's draws vs featcon's, 256 seeds.

Run from the repository root: ``python benchmarks/script_draws.py`` (docs/reproduction.md,
Figure 3(d)/10). Prints, per statistic, both means +- std over seeds and their difference in
standard errors.
"""
import numpy as np, torch, jax, jax.numpy as jnp
from featcon.testing import theory_reference as torch_reference
from featcon.theory import config as config_lib, program, train as theory_train
torch.set_num_threads(1)
N = 256
def stats(W, b, a, c, M, x, y):
  P = W @ M
  r = np.linalg.norm(x @ M[:, :32], axis=1)
  return [np.linalg.norm(P[:, :32], axis=1).mean(), np.linalg.norm(P[:, 32:], axis=1).mean(),
          np.abs(b).mean(), np.abs(a).mean(), abs(float(c)), r[y > 0].mean(), r[y < 0].mean(),
          np.abs(M.T @ M - np.eye(64)).max()]
ts = []
for s in range(N):
  p = torch_reference.script_problem(s, core="sphere", train_output=True)
  n = p["net"]
  ts.append(stats(n.hidden.weight.detach().numpy(), n.hidden.bias.detach().numpy(),
                  n.out.weight.detach().numpy(), n.out.bias.detach().numpy()[0], p["M"].numpy(),
                  p["x"].numpy(), p["y"].numpy()))
cfg = config_lib.resolve({"data": {"core": "sphere"}, "model": {"train_output": True, "output_init": "pytorch"},
                          "train": {"optimizer": "adamw", "loss": "logistic"}})
static, dyn = program.from_config(cfg)
fs = []
for s in range(N):
  pr = jax.device_get(theory_train.make_problem(static, dyn._replace(seed=jnp.uint32(s))))
  q = pr.params0
  fs.append(stats(np.asarray(q["W"]), np.asarray(q["b"]), np.asarray(q["a"]), q["c"], np.asarray(pr.M),
                  np.asarray(pr.train_x), np.asarray(pr.train_y)))
ts, fs = np.asarray(ts), np.asarray(fs)
names = ["C_core_0", "C_bg_0", "|b|", "|a|", "|c|", "radius y=+1", "radius y=-1", "max|M^T M - I|"]
for i, nm in enumerate(names):
  se = np.sqrt(ts[:, i].var() / N + fs[:, i].var() / N)
  print(f"{nm:16s} torch {ts[:, i].mean():.6f} ± {ts[:, i].std():.6f}  featcon {fs[:, i].mean():.6f} ± {fs[:, i].std():.6f}  diff/se {(ts[:, i].mean() - fs[:, i].mean()) / max(se, 1e-12):+.2f}")
