"""The padded-image experiment of Appendix F.4 (Figure 6c, Figure 13), made quantitative.

The paper pads CIFAR-10 images with brick-red pixels (150, 50, 50), resizes them back, trains a
ResNet and sees the colour of the padding in the learned filters, although the padding carries no
information about the label. At CPU scale we use scikit-learn's 8×8 handwritten digits: each digit
is drawn grey (R = G = B) and upsampled into the centre of a `size`×`size` canvas whose border of
`pad` pixels has one constant colour, drawn independently of the label. The control model is the
same network trained on the same digits with a black border, i.e. the unpadded digit (the digits'
own background is black), at the same geometry.

Because the digits are grey, the *core* features of every input lie on the grey axis
`g = (1, 1, 1)/√3` of colour space, and the padding colour is the only source of chroma (the plane
orthogonal to g): the chroma part of a first-layer filter is the deep analogue of THEORY.md's
background projection `C_bg`. For the control run the chroma part of the stem filters receives no
gradient at all (its inputs have none), so it only changes by weight decay; any growth in the
padded run is learned from a feature uncorrelated with the label.

Measured (all in `measure`):
- filters: mean over stem filters of the grey-axis and chroma norms and the chroma share of the
  squared norm, and the norm of the filters' response to the padding colour's chroma direction;
  at init and after training;
- representation: the fraction of the variance of `pre_logits` (over test digits × padding
  colours) that lies *within* digits, i.e. is caused by changing only the padding colour;
- accuracy on the test digits with padding colours from several families (train family, fixed
  brick red, green, blue, black): how accuracy moves when only the padding colour changes.
"""
import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from featcon.analysis import nets

COLOUR_FAMILIES = {
    "red": (150, 50, 50),      # the paper's brick red
    "green": (50, 150, 50),
    "blue": (50, 50, 150),
    "yellow": (150, 150, 50),
    "black": (0, 0, 0),        # the control: the digit's own background
}
GREY = np.ones(3, np.float32) / np.sqrt(3.0)


def default_config():
  """CPU-scale defaults (≈15–30 s per model on 2 shared cores)."""
  c = ml_collections.ConfigDict()
  c.size = 16              # canvas side
  c.pad = 3                # border width; the digit fills the central size - 2·pad pixels
  c.widths = (8, 16, 32)
  c.blocks = 1
  c.steps = 600
  c.batch_size = 64
  c.learning_rate = 3e-3
  c.weight_decay = 1e-4
  c.n_test = 500
  c.jitter = 0.15          # half-width of the uniform per-channel jitter of a coloured family
  c.train_conditions = ("black", "red_fixed", "red")  # control, the paper's, jittered red
  c.test_families = ("red", "red_fixed", "green", "blue", "yellow", "black")
  c.probe_digits = 200     # digits × colours for the representation variance
  c.probe_colours = 8
  c.seeds = (0, 1, 2)
  return c


def load_digits():
  """scikit-learn's 1,797 handwritten digits as (N, 8, 8) grey values in [0, 1] and labels.

  Needs the `analysis` extra (`pip install -e ".[analysis]"`).
  """
  try:
    from sklearn.datasets import load_digits as _load  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('the padded-digits experiment needs scikit-learn: pip install -e ".[analysis]"'
                      ) from e
  d = _load()
  return (d.images / 16.0).astype(np.float32), d.target.astype(np.int32)


def synthetic_glyphs(seed, n, num_classes=10, side=8):
  """Offline stand-in for digits in tests: one random binary template per class plus noise."""
  rng = np.random.default_rng(seed)
  templates = (rng.random((num_classes, side, side)) < 0.35).astype(np.float32)
  labels = rng.integers(0, num_classes, n).astype(np.int32)
  glyphs = np.clip(templates[labels] + 0.2 * rng.standard_normal((n, side, side)), 0, 1)
  return glyphs.astype(np.float32), labels


def parse_family(name):
  """'red' → (centre RGB in [0,1], jittered=True); 'red_fixed' → (centre, False)."""
  base, fixed = (name[:-6], True) if name.endswith("_fixed") else (name, False)
  if base not in COLOUR_FAMILIES:
    allowed = sorted(COLOUR_FAMILIES) + [f"{k}_fixed" for k in sorted(COLOUR_FAMILIES)]
    raise ValueError(f"colour family={name!r}: allowed {allowed}")
  return np.asarray(COLOUR_FAMILIES[base], np.float32) / 255.0, not fixed and base != "black"


def sample_colours(key, n, family, jitter):
  """(n, 3) padding colours: the family's centre plus Uniform(−jitter, jitter) per channel."""
  centre, jittered = parse_family(family)
  noise = jax.random.uniform(key, (n, 3), minval=-jitter, maxval=jitter) if jittered else 0.0
  return jnp.clip(jnp.broadcast_to(centre + noise, (n, 3)), 0.0, 1.0)


def border_mask(size, pad):
  """(size, size) float mask: 1 on the central digit region, 0 on the padding."""
  m = np.zeros((size, size), np.float32)
  m[pad:size - pad, pad:size - pad] = 1.0
  return m


def render(glyphs, colours, size, pad):
  """Draws grey glyphs (N, h, w) into RGB canvases (N, size, size, 3) with coloured borders."""
  inner = size - 2 * pad
  if inner < 1:
    raise ValueError(f"pad={pad}: leaves no room for the digit in size={size}")
  g = jax.image.resize(jnp.asarray(glyphs), (glyphs.shape[0], inner, inner), "bilinear")
  g = jnp.pad(jnp.clip(g, 0, 1), ((0, 0), (pad, pad), (pad, pad)))[..., None]
  mask = jnp.asarray(border_mask(size, pad))[None, :, :, None]
  return mask * jnp.repeat(g, 3, axis=-1) + (1 - mask) * colours[:, None, None, :]


def make_model(cfg, num_classes=10):
  return nets.SmallResNet(widths=tuple(cfg.widths), blocks=cfg.blocks, out_dim=num_classes)


def make_train(cfg, glyphs, labels, num_classes=10):
  """Static setup; returns `(model, train)` with `train(key, family) -> (init_params, params, losses)`.

  Every step draws a batch of training digits and fresh padding colours from `family`, so the
  padding colour is independent of the label by construction. The step is jitted once per family
  and driven by a host loop: on these CPUs XLA runs the conv gradients ~10× slower inside a
  `lax.scan` than as a jitted step.
  """
  model = make_model(cfg, num_classes)
  tx = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
  glyphs = jnp.asarray(glyphs)
  labels = jnp.asarray(labels)
  n = glyphs.shape[0]

  def loss_fn(p, x, y):
    logits, _ = model.apply({"params": p}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @functools.partial(jax.jit, static_argnums=3)
  def step(p, o, k, family):
    k_idx, k_col = jax.random.split(k)
    idx = jax.random.randint(k_idx, (cfg.batch_size,), 0, n)
    x = render(glyphs[idx], sample_colours(k_col, cfg.batch_size, family, cfg.jitter),
               cfg.size, cfg.pad)
    loss, g = jax.value_and_grad(loss_fn)(p, x, labels[idx])
    upd, o = tx.update(g, o, p)
    return optax.apply_updates(p, upd), o, loss

  def train(key, family):
    k_init, k_run = jax.random.split(key)
    x0 = jnp.zeros((1, cfg.size, cfg.size, 3), jnp.float32)
    init_params = model.init(k_init, x0)["params"]
    p, o = init_params, tx.init(init_params)
    losses = []
    for k in jax.random.split(k_run, cfg.steps):
      p, o, loss = step(p, o, k, family)
      losses.append(loss)
    return init_params, p, jnp.stack(losses)

  return model, train


def filter_colour_stats(kernel, pad_rgb=COLOUR_FAMILIES["red"]):
  """Colour decomposition of first-layer filters (kh, kw, 3, F); a dict of floats.

  Each filter's RGB weight vector at each tap is split into its grey-axis part (g gᵀ w, where
  the grey digits live) and its chroma part ((I − g gᵀ) w, reachable only through the padding).
  - grey_norm, chroma_norm: mean over filters of the Frobenius norms of the two parts;
  - chroma_share: Σ chroma² / Σ total² over all filters (2/3 for isotropic random filters);
  - pad_response: mean over filters of |Σ_taps wᵀ u|, u the unit chroma direction of the padding
    colour (brick red by default): how strongly a filter answers a uniform patch of that colour
    beyond its brightness.
  """
  w = jnp.asarray(kernel)
  if w.ndim != 4 or w.shape[2] != 3:
    raise ValueError(f"kernel.shape={w.shape}: need (kh, kw, 3, filters)")
  g = jnp.asarray(GREY)
  grey = jnp.einsum("hwcf,c->hwf", w, g)                       # coefficient on g
  chroma = w - grey[:, :, None, :] * g[None, None, :, None]
  c = np.asarray(pad_rgb, np.float32)
  u = c - c.dot(GREY) * GREY
  u = jnp.asarray(u / np.linalg.norm(u))
  resp = jnp.abs(jnp.einsum("hwcf,c->f", w, u))
  tot2 = (w ** 2).sum()
  return {
      "grey_norm": float(jnp.sqrt((grey ** 2).sum((0, 1))).mean()),
      "chroma_norm": float(jnp.sqrt((chroma ** 2).sum((0, 1, 2))).mean()),
      "chroma_share": float((chroma ** 2).sum() / tot2),
      "pad_response": float(resp.mean()),
  }


def within_group_variance_fraction(reps):
  """Share of the total variance of reps (G digits, P colours, d) that lies within digits.

  `Σ_d mean_g Var_p(reps[g, p, d]) / Σ_d Var_{g,p}(reps[g, p, d])`: 0 when the padding colour
  does not move the representation, 1 when only the colour does.
  """
  reps = jnp.asarray(reps)
  within = reps.var(axis=1).mean(0).sum()
  total = reps.reshape(-1, reps.shape[-1]).var(0).sum()
  return float(within / jnp.maximum(total, 1e-12))


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, x):
  return model.apply({"params": params}, x)


def measure(cfg, model, params, glyphs, labels, key):
  """Accuracy per padding-colour family and the colour share of the representation's variance."""
  apply = lambda x: _apply(model, params, x)  # noqa: E731
  out = {"accuracy": {}}
  for i, fam in enumerate(cfg.test_families):
    cols = sample_colours(jax.random.fold_in(key, i), glyphs.shape[0], fam, cfg.jitter)
    logits, _ = apply(render(glyphs, cols, cfg.size, cfg.pad))
    out["accuracy"][fam] = float(jnp.mean(jnp.argmax(logits, -1) == labels))
  g, p = min(cfg.probe_digits, glyphs.shape[0]), cfg.probe_colours
  cols = jax.random.uniform(jax.random.fold_in(key, 999), (p, 3))    # any colour, same for all
  x = render(jnp.repeat(jnp.asarray(glyphs[:g]), p, 0), jnp.tile(cols, (g, 1)), cfg.size, cfg.pad)
  _, inter = apply(x)
  for name in ("stem", "pre_logits"):
    r = inter[name].reshape(g, p, -1)
    out[f"colour_var_frac_{name}"] = within_group_variance_fraction(r)
  return out


@dataclasses.dataclass
class PaddingRun:
  condition: str
  seed: int
  init_filters: dict
  filters: dict
  init_metrics: dict
  metrics: dict
  final_loss: float
  params: object = None
  init_params: object = None


def run_seed(cfg, train_fn, model, test, condition, seed):
  """Trains one model under a padding condition and measures it (at init and trained)."""
  glyphs_te, labels_te = test
  key = jax.random.PRNGKey(seed)
  init_p, p, losses = train_fn(key, condition)
  losses = np.asarray(losses)
  if not np.isfinite(losses).all():
    bad = int(np.argmin(np.isfinite(losses)))
    raise FloatingPointError(f"non-finite loss {losses[bad]} at step {bad} ({condition}, seed {seed})")
  k_eval = jax.random.PRNGKey(10_000 + seed)
  return PaddingRun(
      condition=condition, seed=seed,
      init_filters=filter_colour_stats(nets.first_conv_kernel(init_p)),
      filters=filter_colour_stats(nets.first_conv_kernel(p)),
      init_metrics=measure(cfg, model, init_p, glyphs_te, labels_te, k_eval),
      metrics=measure(cfg, model, p, glyphs_te, labels_te, k_eval),
      final_loss=float(losses[-50:].mean()), params=p, init_params=init_p)


def summarise(runs):
  """Mean and std over seeds of every number, per condition: {condition: {metric: [mean, std]}}."""
  flat = {}
  for r in runs:
    row = {"final_loss": r.final_loss}
    for pre, d in (("init_filter.", r.init_filters), ("filter.", r.filters)):
      row.update({pre + k: v for k, v in d.items()})
    for pre, d in (("init.", r.init_metrics), ("", r.metrics)):
      for k, v in d.items():
        if isinstance(v, dict):
          row.update({f"{pre}{k}.{kk}": vv for kk, vv in v.items()})
        else:
          row[pre + k] = v
    flat.setdefault(r.condition, []).append(row)
  return {c: {k: [float(np.mean([row[k] for row in rows])), float(np.std([row[k] for row in rows]))]
              for k in rows[0]} for c, rows in flat.items()}


def run_experiment(cfg, workdir, glyphs=None, labels=None, plot=True):
  """Runs every (condition, seed) and writes `padding.json` and filter PNGs under `workdir`.

  Returns the summary dict (also in the JSON) and the list of `PaddingRun`s.
  """
  if glyphs is None:
    glyphs, labels = load_digits()
  os.makedirs(workdir, exist_ok=True)
  for c in cfg.train_conditions:
    parse_family(c)
  for c in cfg.test_families:
    parse_family(c)
  rng = np.random.default_rng(0)
  perm = rng.permutation(glyphs.shape[0])
  n_te = min(cfg.n_test, glyphs.shape[0] // 3)
  te, tr = perm[:n_te], perm[n_te:]
  model, train_fn = make_train(cfg, glyphs[tr], labels[tr], int(labels.max()) + 1)
  runs = [run_seed(cfg, train_fn, model, (glyphs[te], labels[te]), c, s)
          for c in cfg.train_conditions for s in cfg.seeds]
  summary = summarise(runs)
  per_run = [{k: v for k, v in dataclasses.asdict(r).items() if k not in ("params", "init_params")}
             for r in runs]
  with open(os.path.join(workdir, "padding.json"), "w") as f:
    json.dump({"config": cfg.to_dict(), "summary": summary, "runs": per_run}, f, indent=1)
  if plot:
    from featcon.analysis import plots  # pylint: disable=g-import-not-at-top
    first = {c: next(r for r in runs if r.condition == c) for c in cfg.train_conditions}
    plots.filters(
        {"init": nets.first_conv_kernel(first[cfg.train_conditions[0]].init_params),
         **{c: nets.first_conv_kernel(r.params) for c, r in first.items()}},
        os.path.join(workdir, "padding_filters.png"))
    examples = {f: render(glyphs[te[:6]], sample_colours(jax.random.PRNGKey(0), 6, f, cfg.jitter),
                          cfg.size, cfg.pad) for f in cfg.test_families}
    plots.image_grid(examples, os.path.join(workdir, "padding_inputs.png"))
  return summary, runs
