"""The padded-image experiment of Appendix F.4 (Figure 6c, Figure 13), made quantitative.

The paper pads CIFAR-10 images with brick-red pixels (150, 50, 50), resizes them back, trains a
ResNet and sees the colour of the padding in the learned filters, although the padding carries no
information about the label. One experiment, two data paths (config field `source`):

- `source="digits"` (default, CPU scale): scikit-learn's 8×8 handwritten digits, each drawn grey
  (R = G = B) and upsampled into the centre of a `size`×`size` canvas whose border of `pad`
  pixels has one constant colour (`render`). The control is the same network trained on the same
  digits with a black border, i.e. the unpadded digit (the digits' own background is black), at
  the same geometry.
- `source=<registry data set>`, e.g. "cifar10" (full scale): natural RGB images read through
  `featcon.data` (TFDS `data_source`, offline), padded with `pad` px of one constant colour per
  image and resized back to `size`×`size`, the paper's operation (`padding_rgb.render_rgb`).

In both, a training *condition* is a colour family (`sample_colours`): "red" = brick red ±
Uniform(−jitter, jitter) per channel, "red_fixed" = exactly brick red (the paper), likewise
green, blue, yellow; "black"; "mean" = the training images' mean pixel colour m (fixed); "none" =
no padding at all (digits: the glyph upsampled to the whole canvas; RGB: the original image, no
resize). The colour is drawn independently of the label at every step.

Controls. Digits: "black" (the digits' own background). RGB: "mean" is the fairest control: the
same images, padded and resized in exactly the same way (same content scale and blur, same border
geometry), with the border in the data's mean colour — a constant that adds no colour along the
padding direction c − m, so padded and control inputs differ *only* in the border colour. "none"
(the literal unpadded images, what "standard training" means in the paper) is also offered; it
changes the content's scale and sharpness as well, so padded − none mixes both effects.

Because the digits are grey, their *core* features lie on the grey axis `g = (1, 1, 1)/√3` of
colour space, and the padding colour is the only source of chroma (the plane orthogonal to g):
the chroma part of a first-layer filter is the deep analogue of docs/theory.md's background projection
`C_bg`. For the control run the chroma part of the stem filters receives no gradient at all (its
inputs have none), so it only changes by weight decay; any growth in the padded run is learned
from a feature uncorrelated with the label. Natural images are not grey; their filter measure is
defined in `padding_rgb` (projection onto the padding direction relative to the mean colour).

Measured (`measure`, `filter_stats`), for both paths, at init and after training:
- filters: digits: `filter_colour_stats` (grey-axis and chroma norms, chroma share, response to
  the padding colour's chroma direction); RGB: `padding_rgb.filter_pad_stats` (response to, and
  share of the filters' norm along, a uniform patch of the padding direction u = (c − m)/‖c − m‖);
- representation: the fraction of the variance of `stem` and `pre_logits` (over test images ×
  random padding colours) that lies *within* images, i.e. is caused by changing only the padding
  colour (`within_group_variance_fraction`);
- accuracy on the test images under each test family: how accuracy moves when only the padding
  colour changes.
"""
import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from featcon import progress as progress_lib
from featcon.models import small_resnet as nets
from featcon.analysis import padding_rgb

COLOUR_FAMILIES = {
    "red": (150, 50, 50),      # the paper's brick red
    "green": (50, 150, 50),
    "blue": (50, 50, 150),
    "yellow": (150, 150, 50),
    "black": (0, 0, 0),        # the digits' control: the digit's own background
}
MEAN = "mean"                  # the training images' mean pixel colour (fixed)
UNPADDED = "none"              # no padding at all
GREY = np.ones(3, np.float32) / np.sqrt(3.0)
SCHEDULES = ("constant", "cosine")


def default_config():
  """CPU-scale defaults on the digits (≈15–30 s per model on 2 shared cores)."""
  c = ml_collections.ConfigDict()
  c.source = "digits"      # or a registry data set with train/test splits, e.g. "cifar10"
  c.data_dir = ""          # registry data_dir ("" = TFDS's default ~/tensorflow_datasets)
  c.n_train = 0            # training images used (0 = all; digits: those not in the test set)
  c.size = 16              # canvas side (digits); image side, resized on read if needed (RGB)
  c.pad = 3                # border width; digits fill the central size - 2·pad pixels
  c.widths = (8, 16, 32)
  c.blocks = 1
  c.steps = 600
  c.batch_size = 64
  c.learning_rate = 3e-3
  c.schedule = "constant"  # or "cosine" (decay to 0 over `steps`)
  c.weight_decay = 1e-4
  c.flip = False           # random horizontal flips (RGB; the border is symmetric)
  c.n_test = 500
  c.jitter = 0.15          # half-width of the uniform per-channel jitter of a coloured family
  c.train_conditions = ("black", "red_fixed", "red")  # control, the paper's, jittered red
  c.test_families = ("red", "red_fixed", "green", "blue", "yellow", "black")
  c.measure_family = "red"  # the padding colour c whose direction the filter measures use
  c.probe_digits = 200     # test images × colours for the representation variance
  c.probe_colours = 8
  c.eval_batch_size = 2048  # images per forward pass when measuring
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


def family_names():
  """Every allowed colour-family name (see the module docstring)."""
  return (sorted(COLOUR_FAMILIES) + [f"{k}_fixed" for k in sorted(COLOUR_FAMILIES)]
          + [MEAN, UNPADDED])


def parse_family(name, mean_rgb=None):
  """Colour family → (centre RGB in [0, 1], jittered).

  'red' → (brick red, True); 'red_fixed' → (brick red, False); 'black' → fixed;
  'mean' → (mean_rgb, False), the data's mean pixel colour; 'none' (no padding) → (None, False).
  """
  if name == UNPADDED:
    return None, False
  if name == MEAN:
    if mean_rgb is None:
      raise ValueError("colour family='mean' needs the data's mean colour (mean_rgb)")
    return np.asarray(mean_rgb, np.float32), False
  base, fixed = (name[:-6], True) if name.endswith("_fixed") else (name, False)
  if base not in COLOUR_FAMILIES:
    raise ValueError(f"colour family={name!r}: allowed {family_names()}")
  return np.asarray(COLOUR_FAMILIES[base], np.float32) / 255.0, not fixed and base != "black"


def sample_colours(key, n, family, jitter, mean_rgb=None):
  """(n, 3) padding colours: the family's centre plus Uniform(−jitter, jitter) per channel.

  'none' has no colour; it gives zeros (unused by the renderers).
  """
  centre, jittered = parse_family(family, mean_rgb)
  if centre is None:
    return jnp.zeros((n, 3), jnp.float32)
  if not jittered:
    return jnp.clip(jnp.broadcast_to(jnp.asarray(centre), (n, 3)), 0.0, 1.0)
  return _colours(key, n, centre, jitter)


def _colours(key, n, centre, amp):
  """Colours centre + Uniform(−amp, amp) per channel, clipped to [0, 1]; the family may be
  traced values (one compiled step for every family)."""
  noise = jax.random.uniform(key, (n, 3), minval=-amp, maxval=amp)
  return jnp.clip(jnp.broadcast_to(centre + noise, (n, 3)), 0.0, 1.0)


def border_mask(size, pad):
  """(size, size) float mask: 1 on the central digit region, 0 on the padding."""
  m = np.zeros((size, size), np.float32)
  m[pad:size - pad, pad:size - pad] = 1.0
  return m


def render(glyphs, colours, size, pad):
  """Draws grey glyphs (N, h, w) into RGB canvases (N, size, size, 3) with coloured borders.

  x = M ⊙ (glyph upsampled bilinearly to the central (size − 2·pad)², repeated on R, G, B)
      + (1 − M) ⊙ c,  M = `border_mask(size, pad)`.
  """
  inner = size - 2 * pad
  if inner < 1:
    raise ValueError(f"pad={pad}: leaves no room for the digit in size={size}")
  g = jax.image.resize(jnp.asarray(glyphs), (glyphs.shape[0], inner, inner), "bilinear")
  g = jnp.pad(jnp.clip(g, 0, 1), ((0, 0), (pad, pad), (pad, pad)))[..., None]
  mask = jnp.asarray(border_mask(size, pad))[None, :, :, None]
  return mask * jnp.repeat(g, 3, axis=-1) + (1 - mask) * colours[:, None, None, :]


def filter_colour_stats(kernel, pad_rgb=COLOUR_FAMILIES["red"]):
  """Colour decomposition of first-layer filters (kh, kw, 3, F) for grey data; a dict of floats.

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
  """Share of the total variance of reps (G images, P colours, d) that lies within images.

  `Σ_d mean_g Var_p(reps[g, p, d]) / Σ_d Var_{g,p}(reps[g, p, d])`: 0 when the padding colour
  does not move the representation, 1 when only the colour does.
  """
  reps = jnp.asarray(reps)
  within = reps.var(axis=1).mean(0).sum()
  total = reps.reshape(-1, reps.shape[-1]).var(0).sum()
  return float(within / jnp.maximum(total, 1e-12))


@dataclasses.dataclass
class PaddingData:
  """What the experiment trains and tests on, and how its inputs are made.

  kind: "digits" (x: grey glyphs (N, h, w) float32 in [0, 1], drawn by `render`) or "rgb"
  (x: images (N, size, size, 3) uint8, padded by `padding_rgb.render_rgb`).
  mean_rgb: m, the mean pixel colour (3,) in [0, 1] of the unpadded training content.
  """
  kind: str
  name: str
  train_x: np.ndarray
  train_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  num_classes: int
  size: int
  pad: int
  mean_rgb: np.ndarray = None

  def __post_init__(self):
    if self.kind not in ("digits", "rgb"):
      raise ValueError(f"PaddingData kind={self.kind!r}: allowed 'digits', 'rgb'")
    if self.mean_rgb is None:
      x = np.asarray(self.train_x)   # no float copy: 45k CIFAR images would need 1.1 GB
      if self.kind == "digits":
        self.mean_rgb = np.full(3, x.mean(dtype=np.float64), np.float32)
      else:
        self.mean_rgb = (x.mean((0, 1, 2), dtype=np.float64) / 255.0).astype(np.float32)

  def inputs(self, x, colours, plain=False):
    """Network inputs (N, size, size, 3) in [0, 1] from content x and padding colours (N, 3).

    plain=True: the unpadded input (family 'none'): digits upsampled to the whole canvas; RGB
    images as they are.
    """
    if self.kind == "digits":
      if plain:
        return render(x, jnp.zeros((x.shape[0], 3), jnp.float32), self.size, 0)
      return render(x, colours, self.size, self.pad)
    x = jnp.asarray(x).astype(jnp.float32) / 255.0
    return x if plain else padding_rgb.render_rgb(x, colours, self.pad)

  def filter_stats(self, kernel, family="red"):
    """Digits: `filter_colour_stats`; RGB: `padding_rgb.filter_pad_stats` with c = the family's
    centre and m = mean_rgb (definitions in their docstrings)."""
    base = family[:-6] if family.endswith("_fixed") else family
    if self.kind == "digits":
      return filter_colour_stats(kernel, COLOUR_FAMILIES[base])
    return padding_rgb.filter_pad_stats(kernel, np.asarray(COLOUR_FAMILIES[base]) / 255.0,
                                        self.mean_rgb)

  def describe(self):
    """The data facts written to padding.json (source, sizes, m)."""
    return {"source": self.name, "kind": self.kind, "n_train": int(len(self.train_y)),
            "n_test": int(len(self.test_y)), "num_classes": int(self.num_classes),
            "mean_rgb": [float(v) for v in self.mean_rgb]}


def digits_data(cfg, glyphs=None, labels=None):
  """The digits path's data: a fixed seeded split into min(n_test, N/3) test glyphs and the rest."""
  if glyphs is None:
    glyphs, labels = load_digits()
  perm = np.random.default_rng(0).permutation(glyphs.shape[0])
  n_te = min(cfg.n_test, glyphs.shape[0] // 3)
  te, tr = perm[:n_te], perm[n_te:]
  if cfg.n_train:
    tr = tr[:cfg.n_train]
  return PaddingData("digits", "digits", glyphs[tr], labels[tr], glyphs[te], labels[te],
                     int(labels.max()) + 1, cfg.size, cfg.pad)


def rgb_data(cfg):
  """The RGB path's data: registry set `cfg.source`, "train" (n_train) and "test" (n_test) splits."""
  data_dir = cfg.data_dir or None
  x_tr, y_tr, k = padding_rgb.load_images(cfg.source, "train", cfg.n_train, cfg.size, data_dir)
  x_te, y_te, _ = padding_rgb.load_images(cfg.source, "test", cfg.n_test, cfg.size, data_dir)
  return PaddingData("rgb", cfg.source, x_tr, y_tr, x_te, y_te, k, cfg.size, cfg.pad)


def load_data(cfg):
  """`digits_data` or `rgb_data`, by `cfg.source` (checked by `check_config`)."""
  check_config(cfg)
  return digits_data(cfg) if cfg.source == "digits" else rgb_data(cfg)


def check_config(cfg):
  """Raises ValueError naming the field, the bad value and what is allowed."""
  if cfg.source != "digits":
    allowed = padding_rgb.rgb_sources()
    if cfg.source not in allowed:
      raise ValueError(f"padding.source={cfg.source!r}: allowed 'digits' or a registry data set "
                       f"with train and test splits: {', '.join(allowed)}")
  names = family_names()
  for field in ("train_conditions", "test_families"):
    values = tuple(getattr(cfg, field))
    if not values:
      raise ValueError(f"padding.{field}=(): give at least one of {names}")
    for v in values:
      if v not in names:
        raise ValueError(f"padding.{field} item {v!r}: allowed {names}")
  coloured = sorted(k for k in COLOUR_FAMILIES if k != "black")
  base = cfg.measure_family[:-6] if cfg.measure_family.endswith("_fixed") else cfg.measure_family
  if base not in coloured:
    raise ValueError(f"padding.measure_family={cfg.measure_family!r}: allowed {coloured} "
                     "(optionally with '_fixed')")
  if cfg.schedule not in SCHEDULES:
    raise ValueError(f"padding.schedule={cfg.schedule!r}: allowed {SCHEDULES}")
  for field in ("steps", "batch_size", "size", "probe_digits", "probe_colours",
                "eval_batch_size", "n_test"):
    if getattr(cfg, field) < 1:
      raise ValueError(f"padding.{field}={getattr(cfg, field)!r}: must be >= 1")
  if cfg.n_train < 0:
    raise ValueError(f"padding.n_train={cfg.n_train!r}: must be >= 0 (0 = all)")
  limit = (cfg.size - 1) // 2 if cfg.source == "digits" else None
  if cfg.pad < 0 or (limit is not None and cfg.pad > limit):
    raise ValueError(f"padding.pad={cfg.pad!r}: allowed 0.." + (str(limit) if limit is not None
                                                                 else "any") +
                     f" for source={cfg.source!r}, size={cfg.size}")
  if not cfg.seeds:
    raise ValueError("padding.seeds=(): give at least one seed")


def make_model(cfg, num_classes=10):
  """The trained network: `nets.SmallResNet` (stem, stages of basic blocks, GAP, linear head)."""
  return nets.SmallResNet(widths=tuple(cfg.widths), blocks=cfg.blocks, out_dim=num_classes)


def _learning_rate(cfg):
  """Constant `learning_rate`, or cosine decay η_t = η·½(1 + cos(πt/steps)) ("cosine")."""
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps)
  return cfg.learning_rate


def random_flip(key, x):
  """Mirrors each image (N, H, W, C) left–right with probability ½."""
  flip = jax.random.bernoulli(key, 0.5, (x.shape[0],))
  return jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)


@dataclasses.dataclass
class Trainer:
  """`make_train`'s result: the model, `train(key, family)` and the jitted measurement passes."""
  model: Any
  train: Any
  predict: Any      # (params, x, colours, plain) -> argmax class (N,)
  represent: Any    # (params, x, colours) -> (stem (N, ...), pre_logits (N, d))


def make_train(cfg, data):
  """Static setup; returns a `Trainer` with `train(key, family) -> (init_params, params, losses)`.

  Every step draws a batch of training images and fresh padding colours from `family`, so the
  padding colour is independent of the label by construction. The family enters the step as
  values (centre, jitter), so one compiled step serves every coloured family (and one more the
  unpadded 'none'). The step is driven by a host loop: on these CPUs XLA runs the conv gradients
  ~10× slower inside a `lax.scan` than as a jitted step.
  """
  model = make_model(cfg, data.num_classes)
  tx = optax.adamw(_learning_rate(cfg), weight_decay=cfg.weight_decay)
  xs = jnp.asarray(data.train_x)
  ys = jnp.asarray(data.train_y)
  n = xs.shape[0]

  def loss_fn(p, x, y):
    logits, _ = model.apply({"params": p}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @functools.partial(jax.jit, static_argnums=5)
  def step(p, o, k, centre, amp, plain):
    k_idx, k_col = jax.random.split(k)
    idx = jax.random.randint(k_idx, (cfg.batch_size,), 0, n)
    x = data.inputs(xs[idx], _colours(k_col, cfg.batch_size, centre, amp), plain)
    if cfg.flip:
      x = random_flip(jax.random.fold_in(k, 1), x)
    loss, g = jax.value_and_grad(loss_fn)(p, x, ys[idx])
    upd, o = tx.update(g, o, p)
    return optax.apply_updates(p, upd), o, loss

  init = jax.jit(model.init)

  def train(key, family):
    centre, jittered = parse_family(family, data.mean_rgb)
    plain = centre is None
    centre = jnp.zeros(3, jnp.float32) if plain else jnp.asarray(centre)
    amp = jnp.float32(cfg.jitter if jittered else 0.0)
    k_init, k_run = jax.random.split(key)
    x0 = jnp.zeros((1, cfg.size, cfg.size, 3), jnp.float32)
    init_params = init(k_init, x0)["params"]
    p, o = init_params, tx.init(init_params)
    losses = []
    for k in jax.random.split(k_run, cfg.steps):
      p, o, loss = step(p, o, k, centre, amp, plain)
      losses.append(loss)
    return init_params, p, jnp.stack(losses)

  @functools.partial(jax.jit, static_argnums=3)
  def predict(p, x, colours, plain):
    logits, _ = model.apply({"params": p}, data.inputs(x, colours, plain))
    return jnp.argmax(logits, -1)

  @jax.jit
  def represent(p, x, colours):
    _, inter = model.apply({"params": p}, data.inputs(x, colours))
    return inter["stem"], inter["pre_logits"]

  return Trainer(model, train, predict, represent)


def _batched(fn, n, batch, *arrays):
  """fn over consecutive slices of `arrays` (length n), outputs concatenated.

  n <= batch: one call on everything. Otherwise slices of `batch`, the last one padded by
  repeating its final row (and the padding cut off), so fn compiles for one shape only.
  """
  if n <= batch:
    return fn(*arrays)
  outs = []
  for i in range(0, n, batch):
    parts = [a[i:i + batch] for a in arrays]
    short = batch - parts[0].shape[0]
    if short:
      parts = [jnp.concatenate([a, jnp.repeat(a[-1:], short, 0)]) for a in parts]
    out = fn(*parts)
    outs.append(jax.tree_util.tree_map(lambda o: o[:batch - short], out))  # pylint: disable=cell-var-from-loop
  return jax.tree_util.tree_map(lambda *o: jnp.concatenate(o), *outs)


def measure(cfg, trainer, params, data, key):
  """Accuracy per padding-colour family and the colour share of the representation's variance.

  - accuracy[family] = mean over the test images of 1[argmax f(x̃_i) = y_i], x̃_i the test image
    padded with a colour drawn from `family` (or unpadded for 'none');
  - colour_var_frac_{stem, pre_logits} = `within_group_variance_fraction` over the first
    `probe_digits` test images × `probe_colours` uniform random colours (the same for every image).
  """
  x, y = jnp.asarray(data.test_x), jnp.asarray(data.test_y)
  n, b = x.shape[0], cfg.eval_batch_size
  out = {"accuracy": {}}
  for i, fam in enumerate(cfg.test_families):
    cols = sample_colours(jax.random.fold_in(key, i), n, fam, cfg.jitter, data.mean_rgb)
    plain = fam == UNPADDED
    pred = _batched(lambda xx, cc: trainer.predict(params, xx, cc, plain), n, b, x, cols)  # pylint: disable=cell-var-from-loop
    out["accuracy"][fam] = float(jnp.mean(pred == y))
  g, p = min(cfg.probe_digits, n), cfg.probe_colours
  cols = jax.random.uniform(jax.random.fold_in(key, 999), (p, 3))    # any colour, same for all
  xs, cs = jnp.repeat(x[:g], p, 0), jnp.tile(cols, (g, 1))
  stem, pre = _batched(lambda xx, cc: trainer.represent(params, xx, cc), g * p, b, xs, cs)
  for name, r in (("stem", stem), ("pre_logits", pre)):
    out[f"colour_var_frac_{name}"] = within_group_variance_fraction(r.reshape(g, p, -1))
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


def run_seed(cfg, trainer, data, condition, seed):
  """Trains one model under a padding condition and measures it (at init and trained)."""
  key = jax.random.PRNGKey(seed)
  init_p, p, losses = trainer.train(key, condition)
  losses = np.asarray(losses)
  if not np.isfinite(losses).all():
    bad = int(np.argmin(np.isfinite(losses)))
    raise FloatingPointError(f"non-finite loss {losses[bad]} at step {bad} ({condition}, seed {seed})")
  k_eval = jax.random.PRNGKey(10_000 + seed)
  stats = lambda params: data.filter_stats(nets.first_conv_kernel(params), cfg.measure_family)  # noqa: E731
  return PaddingRun(
      condition=condition, seed=seed,
      init_filters=stats(init_p), filters=stats(p),
      init_metrics=measure(cfg, trainer, init_p, data, k_eval),
      metrics=measure(cfg, trainer, p, data, k_eval),
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


def plot_experiment(cfg, data, runs, workdir):
  """Writes `padding_filters.png` (first-layer filters as RGB images: init, then the first seed
  of each condition) and `padding_inputs.png` (six test images under each test family)."""
  from featcon.analysis import plots  # pylint: disable=g-import-not-at-top
  conds = list(dict.fromkeys(r.condition for r in runs))
  first = {c: next(r for r in runs if r.condition == c) for c in conds}
  plots.filters(
      {"init": nets.first_conv_kernel(first[conds[0]].init_params),
       **{c: nets.first_conv_kernel(r.params) for c, r in first.items()}},
      os.path.join(workdir, "padding_filters.png"))
  x = jnp.asarray(data.test_x[:6])
  examples = {f: data.inputs(x, sample_colours(jax.random.PRNGKey(0), x.shape[0], f, cfg.jitter,
                                               data.mean_rgb), f == UNPADDED)
              for f in cfg.test_families}
  plots.image_grid(examples, os.path.join(workdir, "padding_inputs.png"))


def run_experiment(cfg, workdir, glyphs=None, labels=None, plot=True, data=None, progress=True):
  """Runs every (condition, seed) and writes `padding.json` and the PNGs of `plot_experiment` under `workdir`.

  Data: `data` if given, else digits `glyphs`/`labels` if given, else `load_data(cfg)`.
  Returns the summary dict (also in the JSON) and the list of `PaddingRun`s. With `progress`,
  a bar over the runs and a closing summary line (final loss per condition) on stderr.
  """
  check_config(cfg)
  if data is None:
    data = digits_data(cfg, glyphs, labels) if glyphs is not None else load_data(cfg)
  os.makedirs(workdir, exist_ok=True)
  trainer = make_train(cfg, data)
  todo = [(c, s) for c in cfg.train_conditions for s in cfg.seeds]
  bar = progress_lib.Bar(len(todo), "padding runs", progress, unit="run")
  bar.start()
  runs = []
  for c, s in todo:
    runs.append(run_seed(cfg, trainer, data, c, s))
    bar()
  bar.close()
  summary = summarise(runs)
  per_run = [{k: v for k, v in dataclasses.asdict(r).items() if k not in ("params", "init_params")}
             for r in runs]
  with open(os.path.join(workdir, "padding.json"), "w") as f:
    json.dump({"config": cfg.to_dict(), "data": data.describe(), "summary": summary,
               "runs": per_run}, f, indent=1)
  if plot:
    plot_experiment(cfg, data, runs, workdir)
  progress_lib.stage(
      f"padding: {len(runs)} run(s) in {bar.elapsed:.1f}s; final loss "
      + ", ".join(f"{c} {v['final_loss'][0]:.4g}" for c, v in summary.items())
      + f"; wrote {os.path.join(workdir, 'padding.json')}", progress)
  return summary, runs
