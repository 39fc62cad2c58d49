"""Optimizers of docs/theory.md ("Training"), all built from optax transformations.

* ``sgd``: SGD with *coupled* weight decay (eq. 4), ``w <- w - eta (grad + lambda w)``, with
  PyTorch heavy-ball momentum ``v <- mu v + g; w <- w - eta v`` (``momentum = 0`` is plain SGD;
  ``optax.trace`` with decay 0 is exactly the identity, so ``use_momentum=False`` drops the
  trace state and its per-step pass over the weights without changing any number).
* ``adam``: Adam with coupled L2 decay (``torch.optim.Adam(weight_decay=...)``).
* ``adamw``: AdamW with decoupled decay (``torch.optim.AdamW``).

Hyperparameters may be traced arrays, so they can be ``vmap``-ed by the sweep engine.
"""
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine")


def rotation_equivariant(name):
  """True when the optimizer commutes with rotations of the input space.

  docs/theory.md, "Exact feature-coordinate dynamics".

  For these the dynamics of ``P = W M`` close in feature coordinates.
  """
  return name == "sgd"


def schedule(kind, lr, steps, warmup_steps=0):
  """Learning-rate schedule (optax): constant, cosine decay to 0, or linear warmup + cosine."""
  if kind == "constant":
    return lr
  if kind == "cosine":
    return optax.cosine_decay_schedule(lr, steps)
  if kind == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup_steps, 1), steps)
  raise ValueError(f"train.lr_schedule={kind!r} is not one of {SCHEDULES}")


def make(name, *, lr, weight_decay, momentum=0.0, b1=0.9, b2=0.999, eps=1e-8,
         schedule_kind="constant", steps=1, warmup_steps=0, use_momentum=True):
  """The optax ``GradientTransformation`` for ``name`` (see module docstring).

  ``use_momentum=False`` (SGD only) builds plain SGD without a momentum trace; the caller
  guarantees ``momentum == 0`` then.
  """
  lr = schedule(schedule_kind, lr, steps, warmup_steps)
  if name == "sgd":
    trace = [optax.trace(decay=momentum)] if use_momentum else []
    return optax.chain(optax.add_decayed_weights(weight_decay), *trace,
                       optax.scale_by_learning_rate(lr))
  if name == "adam":
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
                       optax.scale_by_learning_rate(lr))
  if name == "adamw":
    return optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
  raise ValueError(f"train.optimizer={name!r} is not one of {OPTIMIZERS}")
