"""Training losses of Section 3 (docs/theory.md, "Training")."""
import jax
import jax.numpy as jnp

LOSSES = ("hinge", "logistic", "mse")


def hinge(f, y):
  """Hinge loss ``max(0, 1 - y f)`` (the theory's loss, Section 3.2); per example."""
  return jax.nn.relu(1.0 - y * f)


def logistic(f, y):
  """Logistic loss ``log(1 + exp(-y f))`` (the public script's default); per example."""
  return jax.nn.softplus(-y * f)


def mse(f, target):
  """Squared error ``||f - target||^2 / out`` per example (regression, Fig. 9).

  Averaged over output coordinates, as ``torch.nn.MSELoss`` over a batch of vectors.
  """
  return jnp.mean(jnp.square(f - target), axis=-1)


def loss_fn(name):
  """The per-example loss by name."""
  fns = {"hinge": hinge, "logistic": logistic, "mse": mse}
  if name not in fns:
    raise ValueError(f"train.loss={name!r} is not one of {LOSSES}")
  return fns[name]


def zero_one(f, y):
  """0-1 error of ``sign(f)`` against ``y`` (f = 0 counts as an error); per example."""
  return (y * f <= 0).astype(jnp.float32)
