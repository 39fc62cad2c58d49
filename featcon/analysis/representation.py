"""Linear read-outs of a representation: domain separability and PCA (Appendix G.1).

Table 5 of the paper reports the error of a linear *domain* classifier (the class label replaced
by the domain index) on held-out examples, and Figure 14 shows a 2-D PCA picture of ID vs OOD
representations. The probe here is closed-form multi-output ridge regression on one-hot targets
(the `fewshot_lsr` idea of big_vision; the solver is featcon.probe.ridge, shared with the ridge
probes of the OOD evaluation), so it is deterministic, fast and needs no tuning loop:

  standardise X with the training mean μ and std s:  X̃ = (X − μ) / s
  centre the one-hot targets Y:                     Ỹ = Y − mean(Y)
  W = (X̃ᵀX̃ / n + λ I)⁻¹ X̃ᵀỸ / n,  scores(x) = ((x − μ)/s) W + mean(Y),  prediction = argmax.

The same probe gives class logits for Grad-CAM on an encoder without a classifier head.
"""
import jax
import jax.numpy as jnp
import numpy as np

from featcon.probe import ridge


def fit_ridge_probe(x, labels, num_classes, l2=1e-3):
  """Fits the closed-form ridge probe above (featcon.probe.ridge, 1/0 targets, float64 solve);
  returns a dict of float32 arrays (`mu`, `scale`, `w`, `b`).

  Args:
    x: (n, d) features.
    labels: (n,) integers in [0, num_classes).
    num_classes: number of outputs (static).
    l2: λ, relative to the standardised features.
  """
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"x.shape={x.shape}: probe features must be (n, d)")
  fit = ridge.fit_ridge(x, np.asarray(labels), num_classes, [l2], targets="onehot")
  as32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
  return {"mu": as32(fit.mu), "scale": as32(fit.scale), "w": as32(fit.weights[0]),
          "b": as32(fit.ybar)}


def probe_scores(probe, x):
  """Class scores of a fitted probe, (n, num_classes); the affine map is differentiable."""
  return ((jnp.asarray(x, jnp.float32) - probe["mu"]) / probe["scale"]) @ probe["w"] + probe["b"]


def probe_error(probe, x, labels):
  """0-1 error of the probe's argmax prediction on (x, labels)."""
  pred = jnp.argmax(probe_scores(probe, x), axis=-1)
  return jnp.mean(pred != jnp.asarray(labels))


def train_test_split(key, n, holdout=0.3):
  """A random permutation split: returns (train_idx, test_idx) as numpy-compatible arrays."""
  if not 0.0 < holdout < 1.0:
    raise ValueError(f"holdout={holdout}: must lie in (0, 1)")
  perm = jax.random.permutation(key, n)
  n_test = max(1, int(round(holdout * n)))
  if n_test >= n:
    raise ValueError(f"n={n}: too few examples to hold out {holdout:.0%} and still train")
  return perm[n_test:], perm[:n_test]


def domain_error(x, domains, key, holdout=0.3, l2=1e-3):
  """Domain-classification error of a linear probe on held-out examples (Appendix G.1, Table 5).

  Low error means that the domains are linearly separable in the representation; the paper finds
  ≈0.1% for CLIP and ≈1% for an ERM ResNet-50 on PACS.

  Args:
    x: (n, d) representations (e.g. the encoder's embedding) of ID and OOD examples together.
    domains: (n,) domain index of each example (0 = ID, 1.. = OOD domains).
    key: PRNG key for the train/hold-out split.
    holdout: fraction of examples held out.
    l2: ridge λ.

  Returns:
    dict with `error` (hold-out 0-1 error), `train_error`, `chance_error` (error of always
    predicting the most frequent training domain on the hold-out set), `n_train`, `n_test`.
  """
  domains = jnp.asarray(domains)
  num = int(domains.max()) + 1
  if num < 2:
    raise ValueError(f"domains: found {num} distinct domain(s); domain error needs at least 2")
  tr, te = train_test_split(key, x.shape[0], holdout)
  x = jnp.asarray(x)
  probe = fit_ridge_probe(x[tr], domains[tr], num, l2)
  majority = jnp.argmax(jnp.bincount(domains[tr], length=num))
  return {
      "error": float(probe_error(probe, x[te], domains[te])),
      "train_error": float(probe_error(probe, x[tr], domains[tr])),
      "chance_error": float(jnp.mean(domains[te] != majority)),
      "n_train": int(tr.shape[0]),
      "n_test": int(te.shape[0]),
  }


def pca_2d(x):
  """Projects (n, d) features on their top two principal components (Figure 14).

  Returns:
    (proj, explained): proj (n, 2), explained (2,) the fraction of total variance on each axis.
  """
  x = jnp.asarray(x, jnp.float32)
  xc = x - x.mean(0)
  _, s, vt = jnp.linalg.svd(xc, full_matrices=False)
  total = jnp.maximum((s ** 2).sum(), 1e-12)
  k = min(2, vt.shape[0])
  proj = xc @ vt[:k].T
  explained = (s[:k] ** 2) / total
  if k < 2:
    proj = jnp.pad(proj, ((0, 0), (0, 2 - k)))
    explained = jnp.pad(explained, (0, 2 - k))
  return proj, explained


def shift_sensitivity(emb, emb_shifted, key, pairs=2000):
  """How far a background-only change moves a representation, in units of how far apart
  different inputs are (the contamination of Section 5 seen in the embedding).

  For pairs (x_i, x'_i) that differ only in the background, returns:
  - `rel_change`: mean_i ||f(x'_i) − f(x_i)|| / ||f(x_i)||;
  - `cosine`: mean_i cos(f(x_i), f(x'_i));
  - `item_distance`: mean over `pairs` random pairs i ≠ j of ||f(x_i) − f(x_j)|| / ||f(x_i)||
    (different items, same background kind);
  - `ratio`: rel_change / item_distance (0: blind to the background; 1: a background change
    moves the representation as far as swapping the item).

  Args:
    emb: (n, d) representations of the originals.
    emb_shifted: (n, d) representations of their background-shifted copies.
    key: PRNG key for the random pairs.
    pairs: number of random pairs (i, j), i ≠ j.
  """
  a, b = np.asarray(emb, np.float64), np.asarray(emb_shifted, np.float64)
  if a.shape != b.shape or a.ndim != 2 or a.shape[0] < 2:
    raise ValueError(f"emb.shape={a.shape}, emb_shifted.shape={b.shape}: need two equal "
                     "(n >= 2, d) arrays")
  norm = np.maximum(np.linalg.norm(a, axis=1), 1e-12)
  rel = np.linalg.norm(b - a, axis=1) / norm
  cos = (a * b).sum(1) / (norm * np.maximum(np.linalg.norm(b, axis=1), 1e-12))
  ki, kj = jax.random.split(key)
  n = a.shape[0]
  i = np.asarray(jax.random.randint(ki, (pairs,), 0, n))
  j = (i + np.asarray(jax.random.randint(kj, (pairs,), 1, n))) % n  # j != i
  item = np.linalg.norm(a[j] - a[i], axis=1) / norm[i]
  return {"rel_change": float(rel.mean()), "cosine": float(cos.mean()),
          "item_distance": float(item.mean()), "ratio": float(rel.mean() / item.mean()),
          "n": int(n)}
