"""The padded-image experiment (Appendix F.4) end to end: train under each padding condition,
measure at init and after training, summarise over seeds, write JSON and figures.

The config's fields and defaults: `configs/analyze.py:padding_config` (checked by `check_config`).
"""
import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from featcon import training as train_lib
from featcon.analysis import plots
from featcon.analysis.padding import colours
from featcon.analysis.padding import data as data_lib
from featcon.analysis.padding import measures
from featcon.models import small_resnet as nets

SCHEDULES = ("constant", "cosine")


def check_config(cfg):
  """Raises ValueError naming the field, the bad value and what is allowed."""
  if cfg.source != "digits":
    allowed = data_lib.rgb_sources()
    if cfg.source not in allowed:
      raise ValueError(f"padding.source={cfg.source!r}: allowed 'digits' or a registry data set "
                       f"with train and test splits: {', '.join(allowed)}")
  names = colours.family_names()
  for field in ("train_conditions", "test_families"):
    values = tuple(getattr(cfg, field))
    if not values:
      raise ValueError(f"padding.{field}=(): give at least one of {names}")
    for v in values:
      if v not in names:
        raise ValueError(f"padding.{field} item {v!r}: allowed {names}")
  coloured = sorted(k for k in colours.COLOUR_FAMILIES if k != "black")
  if colours.base_family(cfg.measure_family) not in coloured:
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


def load_data(cfg):
  """`data.digits_data` or `data.rgb_data`, by `cfg.source` (checked by `check_config` first)."""
  check_config(cfg)
  return data_lib.digits_data(cfg) if cfg.source == "digits" else data_lib.rgb_data(cfg)


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
  """`make_trainer`'s result: the model, `train(key, family)` and the jitted measurement passes."""
  model: Any
  train: Any        # (key, family) -> (init_params, params, losses (steps,))
  predict: Any      # (params, x, colours, plain) -> argmax class (N,)
  represent: Any    # (params, x, colours) -> (stem (N, ...), pre_logits (N, d))


def make_trainer(cfg, data):
  """Static setup; returns a stateful `Trainer` with `train(key, family)`.

  Every step draws a batch of training images and fresh padding colours from `family`, so the
  padding colour is independent of the label by construction, and takes one AdamW step on the
  batch's cross-entropy (`featcon.training.optimizer_step`). The family enters the step as values
  (centre, jitter), so one compiled step serves every coloured family (and one more the unpadded
  'none'). The step is driven by a host loop: on these CPUs XLA runs the conv gradients ~10×
  slower inside a `lax.scan` than as a jitted step.
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
    x = data.inputs(xs[idx], colours.uniform_colours(k_col, cfg.batch_size, centre, amp), plain)
    if cfg.flip:
      x = random_flip(jax.random.fold_in(k, 1), x)
    return train_lib.optimizer_step(loss_fn, p, o, tx, x, ys[idx])

  init = jax.jit(model.init)

  def train(key, family):
    centre, jittered = colours.parse_family(family, data.mean_rgb)
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
  def predict(p, x, cols, plain):
    logits, _ = model.apply({"params": p}, data.inputs(x, cols, plain))
    return jnp.argmax(logits, -1)

  @jax.jit
  def represent(p, x, cols):
    _, inter = model.apply({"params": p}, data.inputs(x, cols))
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
    cols = colours.sample_colours(jax.random.fold_in(key, i), n, fam, cfg.jitter, data.mean_rgb)
    plain = fam == colours.UNPADDED
    pred = _batched(lambda xx, cc: trainer.predict(params, xx, cc, plain), n, b, x, cols)  # pylint: disable=cell-var-from-loop
    out["accuracy"][fam] = float(jnp.mean(pred == y))
  g, p = min(cfg.probe_digits, n), cfg.probe_colours
  cols = jax.random.uniform(jax.random.fold_in(key, 999), (p, 3))    # any colour, same for all
  xs, cs = jnp.repeat(x[:g], p, 0), jnp.tile(cols, (g, 1))
  stem, pre = _batched(lambda xx, cc: trainer.represent(params, xx, cc), g * p, b, xs, cs)
  for name, r in (("stem", stem), ("pre_logits", pre)):
    out[f"colour_var_frac_{name}"] = measures.within_group_variance_fraction(r.reshape(g, p, -1))
  return out


@dataclasses.dataclass
class PaddingRun:
  """One trained model: its condition and seed, filter measures and metrics at init and trained."""
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
  conds = list(dict.fromkeys(r.condition for r in runs))
  first = {c: next(r for r in runs if r.condition == c) for c in conds}
  seed = first[conds[0]].seed
  plots.filters(
      {"initialisation": nets.first_conv_kernel(first[conds[0]].init_params),
       **{f"trained on {c}:\n{colours.describe(c, cfg.jitter)}": nets.first_conv_kernel(r.params)
          for c, r in first.items()}},
      os.path.join(workdir, "padding_filters.png"),
      title=f"First-layer filters of the seed-{seed} models, one row per training border "
      "(RGB, each filter scaled to [0, 1])")
  x = jnp.asarray(data.test_x[:6])
  examples = {f"{f}:\n{colours.describe(f, cfg.jitter)}":
              data.inputs(x, colours.sample_colours(jax.random.PRNGKey(0), x.shape[0], f,
                                                    cfg.jitter, data.mean_rgb),
                          f == colours.UNPADDED)
              for f in cfg.test_families}
  plots.image_grid(examples, os.path.join(workdir, "padding_inputs.png"),
                   title="The first six test images under each test border family")


def run_experiment(cfg, workdir, glyphs=None, labels=None, plot=True, data=None):
  """Runs every (condition, seed) and writes `padding.json` and the PNGs of `plot_experiment` under `workdir`.

  Data: `data` if given, else digits `glyphs`/`labels` if given, else `load_data(cfg)`.
  Returns the summary dict (also in the JSON) and the list of `PaddingRun`s.
  """
  check_config(cfg)
  if data is None:
    data = data_lib.digits_data(cfg, glyphs, labels) if glyphs is not None else load_data(cfg)
  os.makedirs(workdir, exist_ok=True)
  trainer = make_trainer(cfg, data)
  runs = [run_seed(cfg, trainer, data, c, s) for c in cfg.train_conditions for s in cfg.seeds]
  summary = summarise(runs)
  per_run = [{k: v for k, v in dataclasses.asdict(r).items() if k not in ("params", "init_params")}
             for r in runs]
  with open(os.path.join(workdir, "padding.json"), "w") as f:
    json.dump({"config": cfg.to_dict(), "data": data.describe(), "summary": summary,
               "runs": per_run}, f, indent=1)
  if plot:
    plot_experiment(cfg, data, runs, workdir)
  return summary, runs
