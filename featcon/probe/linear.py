"""Linear probes on frozen features: gradient-trained (AdamW/Adam, cosine schedule, model
selection on ID validation accuracy; Appendix E) and closed-form ridge regression onto +-1
one-hot targets (the solver and its formulas: featcon.probe.ridge), ``lam`` chosen on the ID
validation set.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from featcon import io
from featcon import progress as progress_lib
from featcon import training as train_lib
from featcon.probe import ridge
from featcon.probe.metrics import accuracy


@dataclasses.dataclass
class LinearProbe:
  """``logits = features @ kernel + bias``, with how it was selected."""
  kernel: np.ndarray
  bias: np.ndarray
  kind: str
  selected: dict

  def to_npz(self, path: str):
    """Writes the probe to ``path`` (the name as given, atomically)."""
    io.atomic_write(path, lambda f: np.savez(f, kernel=self.kernel, bias=self.bias,
                                             kind=self.kind,
                                             selected=np.asarray(repr(self.selected))),
                    binary=True)


def predict(probe: LinearProbe, features: np.ndarray) -> np.ndarray:
  return np.asarray(features, np.float32) @ probe.kernel + probe.bias


def train_linear_probe(x_train, y_train, x_val, y_val, num_classes: int, *, lr: float = 1e-3,
                       weight_decay: float = 1e-3, batch_size: int = 256, epochs: int = 10,
                       optimizer: str = "adamw", seed: int = 0,
                       evals_per_epoch: int = 1, progress: bool = False,
                       desc: str = "probe") -> LinearProbe:
  """Softmax regression trained with AdamW (or Adam) and a cosine schedule; returns the
  parameters of the evaluation point (end of each epoch) with the best ID validation accuracy
  (Appendix E.1: "the model with the best ID validation accuracy").

  Features are standardised with training statistics folded into the returned kernel/bias.
  With ``progress``, a bar (tqdm, labelled ``desc``) advances once per epoch.
  """
  x_train = np.asarray(x_train, np.float32)
  mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
  n, d = x_train.shape
  bs = min(batch_size, n)
  steps_per_epoch = max(1, n // bs)
  total = steps_per_epoch * epochs
  tx = train_lib.make_optimizer(lr, weight_decay, total, 0, optimizer)
  params = {"kernel": jnp.zeros((d, num_classes)), "bias": jnp.zeros((num_classes,))}
  opt_state = tx.init(params)
  xs, ys = jnp.asarray((x_train - mu) / sd), jnp.asarray(y_train, jnp.int32)
  xv = jnp.asarray((np.asarray(x_val, np.float32) - mu) / sd)

  def loss_fn(p, idx):
    logits = xs[idx] @ p["kernel"] + p["bias"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, ys[idx]).mean()

  @jax.jit
  def epoch(carry, key):
    def step(c, idx):
      p, o, loss = train_lib.optimizer_step(loss_fn, *c, tx, idx)
      return (p, o), loss
    perm = jax.random.permutation(key, n)[:steps_per_epoch * bs].reshape(steps_per_epoch, bs)
    return jax.lax.scan(step, carry, perm)

  key = jax.random.key(seed)
  best, best_acc, history = None, -1.0, []
  carry = (params, opt_state)
  bar = progress_lib.Bar(epochs, desc, progress, unit="epoch")
  for e in range(epochs):
    key, sub = jax.random.split(key)
    carry, losses = epoch(carry, sub)
    p = carry[0]
    acc = accuracy(np.asarray(xv @ p["kernel"] + p["bias"]), y_val)
    history.append(acc)
    if acc > best_acc:
      best_acc, best = acc, jax.device_get(p)
      best_epoch = e + 1
    bar()
  bar.close()
  kernel = np.asarray(best["kernel"]) / sd[:, None]
  bias = np.asarray(best["bias"]) - mu @ kernel
  return LinearProbe(kernel.astype(np.float32), bias.astype(np.float32), f"{optimizer}",
                     {"epoch": best_epoch, "val_accuracy": best_acc, "val_history": history,
                      "final_loss": float(losses[-1])})


def ridge_probe(x_train, y_train, x_val, y_val, num_classes: int,
                lambdas: Sequence[float] = (1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3)) -> LinearProbe:
  """Closed-form ridge regression onto +-1 one-hot targets (featcon.probe.ridge), ``lam``
  (relative to n) selected on ID validation accuracy; the first best ``lam`` wins ties."""
  fit = ridge.fit_ridge(x_train, y_train, num_classes, lambdas, targets="pm1")
  xv = np.asarray(x_val, np.float64)
  best = None
  for i, lam in enumerate(fit.lambdas):
    kernel, bias = fit.affine(i)
    acc = accuracy(xv @ kernel + bias, y_val)
    if best is None or acc > best[0]:
      best = (acc, lam, kernel, bias)
  acc, lam, kernel, bias = best
  return LinearProbe(kernel.astype(np.float32), bias.astype(np.float32), "ridge",
                     {"lambda": lam, "val_accuracy": acc})
