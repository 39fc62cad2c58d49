"""Runs every encoder analysis of Section 5 / Appendices F.2, F.3, G.1, G.2 and writes PNG + JSON.

`run_all(cfg, encoders, data, workdir)` takes any encoders with the featcon contract (see
`encoders.py`) and an `ImageSet`, and runs the analyses of the `ANALYSES` table (name →
function of a `Context`) that `cfg.analyses` names; each writes into `workdir`:
- activation_rates.{json,png}   F.2: class activation rates per block;
- selectivity.{json,png}        F.3 / Figure 5: mean neuron selectivity per layer, ID vs OOD;
- density.{json,png}            G.2 / Figure 15: histogram of each unit's mean activation;
- domain.{json,png}             G.1 / Table 5, Figure 14: domain-probe error and 2-D PCA;
- gradcam.{json,png}            Figure 6(a, b): heatmaps for ID, OOD and background-only shift;
- background.{json,png}         Section 5: share of each spatial layer's activation on the object
                                (needs `data.mask`), and how far a background-only change moves
                                the embedding (needs `data.shifted_images`).
"""
import dataclasses
import functools
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from featcon import io
from featcon.analysis import gradcam
from featcon.analysis import metrics
from featcon.analysis import plots
from featcon.analysis import representation


def default_layers(names):
  """Post-nonlinearity layers of F.2: ViT "block{i}_mlp_act"; EfficientNet-Lite "stem", the
  hidden activations "stage{s}_act" of each stage's last block and "head_act"; else ResNet
  "layer{i}" (+ "stem")."""
  mlp = sorted((n for n in names if n.endswith("_mlp_act")), key=_natural)
  if mlp:
    return mlp
  acts = sorted((n for n in names if re.fullmatch(r"stage\d+_act", n)), key=_natural)
  if acts:
    return [n for n in ("stem",) if n in names] + acts + [n for n in ("head_act",) if n in names]
  return sorted((n for n in names if re.fullmatch(r"stem|layer\d+", n)),
                key=lambda n: (n != "stem", _natural(n)))


def _natural(s):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def default_cam_layer(names, shapes=None, min_side=4):
  """The last block's output: "layer{max}" for ResNets, "block{max}" for ViTs and
  EfficientNet-Lite.

  With `shapes` (name -> shape), spatial maps (N, H, W, C) smaller than `min_side`² are skipped
  (a Grad-CAM of a 1×1 map is flat: featcon.clip's "tiny-rn" has layer4 at 1×1 on 32-px inputs;
  EfficientNet-Lite's last blocks are 2×2 on 48-px inputs, where a centred object covers the four
  cells alike), unless no candidate is that large; ViT token maps are kept.
  """
  for pat in (r"layer\d+", r"block\d+"):
    cands = sorted((n for n in names if re.fullmatch(pat, n)), key=_natural)
    if shapes is not None:
      big = [n for n in cands if len(shapes[n]) != 4 or min(shapes[n][1:3]) >= min_side]
      cands = big or cands
    if cands:
      return cands[-1]
  raise ValueError(f"no 'layer<i>' or 'block<i>' intermediate among {sorted(names)}; "
                   "set cam_layer")


@functools.partial(jax.jit, static_argnames=("module", "num_classes", "layers", "rep_name"))
def _batch_stats(module, variables, x, y, num_classes, layers, rep_name):
  emb, inter = module.apply(variables, x, train=False)
  rep = inter[rep_name] if rep_name in inter else emb
  return ({l: metrics.class_stats(inter[l], y, num_classes) for l in layers},
          rep.reshape(rep.shape[0], -1))


def collect(enc, images, labels, num_classes, layers, rep_name, batch_size):
  """Streams `images` through the encoder: per-layer `ClassStats` and the stacked representation.

  `rep_name` is an intermediate's name, or anything else (e.g. "embedding") for the returned
  embedding. The last batch is padded with label −1 (ignored by `class_stats`) so one compiled
  function serves every batch; it is cached per (module, layers), not per call.
  """
  n = images.shape[0]
  total, reps = None, []
  for s in range(0, n, batch_size):
    x, y = images[s:s + batch_size], labels[s:s + batch_size]
    m = x.shape[0]
    if m < batch_size:
      x = np.concatenate([x, np.zeros((batch_size - m, *x.shape[1:]), x.dtype)])
      y = np.concatenate([y, -np.ones(batch_size - m, y.dtype)])
    st, rep = _batch_stats(enc.module, enc.variables, jnp.asarray(x), jnp.asarray(y),
                           num_classes, tuple(layers), rep_name)
    total = st if total is None else metrics.add_stats(total, st)
    reps.append(np.asarray(rep[:m]))
  return total, np.concatenate(reps)


def _dump(obj, path):
  io.write_json(path, obj, indent=1)


@dataclasses.dataclass
class Context:
  """What every analysis reads: the config, the encoders, the data and the streamed statistics.

  layers[label]: the analysed post-nonlinearity layers of encoder `label`; sel_layers[label]:
  those plus the representation if it is an intermediate; stats[label, domain][layer]: the
  `ClassStats` of that layer over the domain's images; reps[label, domain]: the representation;
  shapes[label]: every intermediate's shape.
  """
  cfg: Any
  encs: list
  data: Any
  workdir: str
  layers: dict
  sel_layers: dict
  shapes: dict
  stats: dict
  reps: dict


def _setting(ctx):
  """The second line of every analysis figure's title: the data and the seed."""
  return f"\ndata {ctx.cfg.data.source}, analysis seed {ctx.cfg.seed}"


def _rates(ctx):
  """F.2: class activation rates per block (`activation_rates.{json,png}`)."""
  out, panels = {}, {}
  for e in ctx.encs:
    for l in ctx.layers[e.label]:
      st = ctx.stats[e.label, 0][l]
      out.setdefault(l, {})[e.label] = {
          "mean_rate": float(metrics.activation_rates(st).mean()),
          "rate_asymmetry": float(metrics.rate_asymmetry(st).mean()),
          "class_mean_rates": np.asarray(metrics.class_mean_rates(st)).round(4).tolist()}
      panels.setdefault(l, {})[e.label] = metrics.activation_rates(st)
  _dump(out, os.path.join(ctx.workdir, "activation_rates.json"))
  plots.histograms(panels, os.path.join(ctx.workdir, "activation_rates.png"), range_=(0, 1),
                   xlabel="class activation rate p_k(c)", legend_title="encoder",
                   title="Per-class activation rates of the units (ID data), one panel per layer"
                   + _setting(ctx))
  return out


def _selectivity(ctx):
  """F.3 / Figure 5: mean neuron selectivity per layer, ID vs OOD (`selectivity.{json,png}`)."""
  cfg, data = ctx.cfg, ctx.data
  out = {}
  for e in ctx.encs:
    for l in ctx.sel_layers[e.label]:
      for dom, dname in enumerate(data.domain_names):
        if (e.label, dom) not in ctx.stats:
          continue
        v = float(metrics.selectivity(metrics.class_means(ctx.stats[e.label, dom][l]),
                                      cfg.selectivity_mode).mean())
        out.setdefault(l, {}).setdefault(e.label, {})[dname] = v
  _dump({"mode": cfg.selectivity_mode, "mean_selectivity": out},
        os.path.join(ctx.workdir, "selectivity.json"))
  selectivity_figure(out, data.domain_names, cfg.selectivity_mode,
                     os.path.join(ctx.workdir, "selectivity.png"), _setting(ctx))
  return out


def selectivity_figure(selectivity, domain_names, mode, path, setting=""):
  """Figure 5's grouped bars from ``selectivity`` = {layer: {encoder: {domain name: mean}}} (what
  ``selectivity.json`` holds as ``mean_selectivity``), one group per (layer, domain) in the
  layers' order, the first domain labelled ID, the others OOD1, OOD2, ...; ``setting`` ends the
  title. Also redraws the figure from a saved JSON (:mod:`featcon.analysis.replot`)."""
  bars = {}
  for l, by_encoder in selectivity.items():
    for e, by_domain in by_encoder.items():
      for dname, v in by_domain.items():
        dom = list(domain_names).index(dname) if dname in domain_names else len(domain_names)
        bars.setdefault(f"{l} {'ID' if dom == 0 else 'OOD' + str(dom)}", {})[e] = v
  rest = "other classes" if mode == "morcos" else "all classes"
  domains = "; ".join(f"{'ID' if i == 0 else 'OOD' + str(i)} = {n}"
                      for i, n in enumerate(domain_names))
  return plots.grouped_bars(
      bars, path, ylabel="mean selectivity s (dimensionless)",
      xlabel="layer and domain", legend_title="encoder",
      title=f"Neuron selectivity (μ_rest: mean over the {rest})" + setting,
      note=f"{domains}. s = (μ_max − μ_rest) / (μ_max + μ_rest) per unit, averaged over the "
      "layer's units; 0: every class activates a unit equally, 1: only one class does. Values "
      "outside [0, 1] come from negative mean activations (GELU, attention pooling), where the "
      "ratio is unbounded.")


def _density(ctx):
  """G.2 / Figure 15: histogram of each unit's mean activation (`density.{json,png}`)."""
  cfg, data = ctx.cfg, ctx.data
  out, panel = {}, {}
  for e in ctx.encs:
    dl = cfg.density_layer or ctx.layers[e.label][0]
    if dl not in ctx.stats[e.label, 0]:  # one more pass for a layer outside the rate layers
      x, y = data.subset(0)
      ctx.stats[e.label, 0][dl] = collect(e, x, y, data.num_classes, [dl], cfg.representation,
                                          cfg.batch_size)[0][dl]
    st = ctx.stats[e.label, 0][dl]
    out[e.label] = {"layer": dl, **metrics.density_summary(st, cfg.density_threshold)}
    panel[f"{e.label} ({dl})"] = metrics.unit_means(st)
  _dump(out, os.path.join(ctx.workdir, "density.json"))
  plots.histograms({"unit mean activation (ID)": panel},
                   os.path.join(ctx.workdir, "density.png"), bins=30,
                   xlabel="mean activation of a unit over ID inputs",
                   legend_title="encoder (layer)",
                   title="Activation density: each unit's mean activation" + _setting(ctx))
  return out


def _domain(ctx):
  """G.1 / Table 5, Figure 14: domain-probe error and 2-D PCA (`domain.{json,png}`)."""
  cfg, reps = ctx.cfg, ctx.reps
  out, panels = {}, {}
  for i, e in enumerate(ctx.encs):
    doms = sorted(d for (lab, d) in reps if lab == e.label)
    x = np.concatenate([reps[e.label, d] for d in doms])
    dom = np.concatenate([np.full(reps[e.label, d].shape[0], d) for d in doms])
    out[e.label] = representation.domain_error(
        x, dom, jax.random.PRNGKey(cfg.seed + i), cfg.holdout, cfg.probe_l2)
    proj, expl = representation.pca_2d(x)
    out[e.label]["pca_explained"] = np.asarray(expl).tolist()
    panels[e.label] = (proj, dom, ctx.data.domain_names)
  _dump({"representation": cfg.representation, **out}, os.path.join(ctx.workdir, "domain.json"))
  plots.scatter_2d(panels, os.path.join(ctx.workdir, "domain.png"), legend_title="domain",
                   title=f"Representations ({cfg.representation}) projected on their first two "
                   "principal components" + _setting(ctx))
  return out


def _cam_rows(cfg, data):
  """Grad-CAM rows: name -> (images, labels, object masks or None), `max(cam_examples,
  cam_mass_examples)` images each: "ID" (the originals of the shifted images when there are
  any), "ID, background shifted", and one row per OOD domain ("OOD" when there is one, else the
  domain's name)."""
  n = max(cfg.cam_examples, cfg.get("cam_mass_examples", 0))
  rows = {}
  if data.shifted_images is not None:
    si = np.asarray(data.shifted_index)[:n]
    rows["ID"] = (data.images[si], data.labels[si], data.mask_of(si))
    rows["ID, background shifted"] = (data.shifted_images[:len(si)], data.labels[si],
                                      data.mask_of(si))
  else:
    i = np.flatnonzero(data.domains == 0)[:n]
    rows["ID"] = (data.images[i], data.labels[i], data.mask_of(i))
  ood = sorted(d for d in set(data.domains.tolist()) if d != 0)
  for d in ood:
    i = np.flatnonzero(data.domains == d)[:n]
    rows["OOD" if len(ood) == 1 else data.domain_names[d]] = (
        data.images[i], data.labels[i], data.mask_of(i))
  return rows


def _identity_scores(params, emb):
  """The embedding as class scores (a classifier's logits), `grad_cam`'s `score_fn` form."""
  del params
  return emb


def _gradcam(ctx):
  """Figure 6(a, b): Grad-CAM heatmaps of the ID class score for ID, OOD and background-only
  shift; quantitatively, CAM mass on the object region (`gradcam.{json,png}`), averaged over
  `max(cam_examples, cam_mass_examples)` images per row (the figure shows `cam_examples`)."""
  cfg, encs, data, shapes, workdir = ctx.cfg, ctx.encs, ctx.data, ctx.shapes, ctx.workdir
  n_plot = cfg.cam_examples
  x_id, y_id = data.subset(0)
  rows = _cam_rows(cfg, data)
  out = {"head": cfg.cam_head}
  images, cams = {}, {}
  for e in encs:
    layer = cfg.cam_layer or default_cam_layer(list(shapes[e.label]), shapes[e.label])
    out.setdefault(e.label, {})["layer"] = layer
    emb_id = collect(e, x_id, y_id, data.num_classes, [], "embedding", cfg.batch_size)[1]
    if cfg.cam_head == "probe":  # the probe's weights are traced: one compile for all encoders
      probe = representation.fit_ridge_probe(emb_id, y_id, data.num_classes, cfg.probe_l2)
      score_fn, score_params = representation.probe_scores, probe
      out.setdefault(e.label, {})["probe_train_error"] = float(
          representation.probe_error(probe, emb_id, y_id))
    elif cfg.cam_head == "identity":
      score_fn, score_params = _identity_scores, ()
    else:
      raise ValueError(f"cam_head={cfg.cam_head!r}: allowed ('probe', 'identity')")
    producer = None
    for r, (x, y, m) in rows.items():
      if not x.shape[0]:
        continue
      if producer is None:
        producer = gradcam.find_producer(e.module, e.variables, jnp.asarray(x[:1]), layer,
                                         {"train": False})
      c = gradcam.grad_cam(e.module, e.variables, x, layer, score_fn, y, {"train": False},
                           producer, score_params)
      images[f"{e.label}: {r}"], cams[f"{e.label}: {r}"] = x[:n_plot], c[:n_plot]
      if m is not None:
        out.setdefault(e.label, {})[f"mass_on_object.{r}"] = float(
            gradcam.cam_mass_in_mask(c, m).mean())
  if data.mask is not None:
    out["object_area"] = float(np.asarray(data.mask, np.float32).mean())
  _dump(out, os.path.join(workdir, "gradcam.json"))
  plots.cam_grid(images, cams, os.path.join(workdir, "gradcam.png"),
                 title=f"Grad-CAM of the true class's score ({cfg.cam_head} head, layer "
                 f"{', '.join(sorted({v['layer'] for k, v in out.items() if isinstance(v, dict)}))})"
                 + _setting(ctx))
  return out


@functools.partial(jax.jit, static_argnames=("module", "layers"))
def _layer_shares(module, variables, x, mask, layers):
  _, inter = module.apply(variables, x, train=False)
  return {l: metrics.activation_share_in_mask(inter[l], mask) for l in layers}


def _background(ctx):
  """Section 5, where the units respond: per spatial layer and domain, the share of the layer's
  activation on the object against the object's share of the grid; and the embedding's
  sensitivity to a background-only change (`representation.shift_sensitivity`) of the shifted
  copies, with the OOD domains' copies of the same items beside it (`background.{json,png}`)."""
  cfg, data = ctx.cfg, ctx.data
  out, bars = {"activation_on_object": {}, "object_share_of_grid": {}}, {}
  for e in ctx.encs:
    layers = tuple(l for l in ctx.layers[e.label] if len(ctx.shapes[e.label][l]) == 4)
    for dom, dname in enumerate(data.domain_names):
      idx = np.flatnonzero(data.domains == dom)
      if not idx.size:
        continue
      shares = {l: [] for l in layers}
      for s in range(0, idx.size, cfg.batch_size):
        i = idx[s:s + cfg.batch_size]
        m = data.mask_of(i)
        got = _layer_shares(e.module, e.variables, jnp.asarray(data.images[i]),
                            jnp.asarray(m if m.ndim == 3 else np.broadcast_to(m, (len(i), *m.shape))),
                            layers)
        for l in layers:
          shares[l].append(np.asarray(got[l]))
      for l in layers:
        v = float(np.concatenate(shares[l]).mean())
        out["activation_on_object"].setdefault(l, {}).setdefault(e.label, {})[dname] = v
        bars.setdefault(f"{l} {'ID' if dom == 0 else 'OOD' + str(dom)}", {})[e.label] = v
        if l not in out["object_share_of_grid"].get(dname, {}):
          h, w = ctx.shapes[e.label][l][1:3]
          grid = metrics.mask_at(data.mask_of(idx), h, w).mean()
          out["object_share_of_grid"].setdefault(dname, {})[l] = float(grid)
  if data.shifted_images is not None:
    si = np.asarray(data.shifted_index)
    out["shift_sensitivity"] = {}
    for i, e in enumerate(ctx.encs):
      emb = collect(e, data.images[si], data.labels[si], data.num_classes, [], "embedding",
                    cfg.batch_size)[1]
      emb_s = collect(e, data.shifted_images[:len(si)], data.labels[si], data.num_classes, [],
                      "embedding", cfg.batch_size)[1]
      out["shift_sensitivity"][e.label] = representation.shift_sensitivity(
          emb, emb_s, jax.random.PRNGKey(cfg.seed + i))
  _dump(out, os.path.join(ctx.workdir, "background.json"))
  plots.grouped_bars(
      bars, os.path.join(ctx.workdir, "background.png"), ylabel="activation share on the object",
      xlabel="layer and domain", legend_title="encoder",
      title="Where the units respond: share of each layer's activation inside the object box"
      + _setting(ctx),
      note="Σ (object mask at the layer's grid) · Σ_channels activation / Σ activation, averaged "
      "over images; a layer that responds to every position alike scores the object's share of "
      "the grid (background.json: object_share_of_grid).")
  return out


# Name → analysis(ctx) -> results; `run_all` runs those named in `cfg.analyses`, in this order.
ANALYSES = {
    "rates": _rates,
    "selectivity": _selectivity,
    "density": _density,
    "domain": _domain,
    "gradcam": _gradcam,
    "background": _background,
}


def check_analyses(cfg, data):
  """The analyses named in `cfg.analyses`; raises ValueError naming an item that is not a key of
  `ANALYSES`, or 'background' when `data` has no object mask."""
  todo = [a for a in cfg.analyses.split(",") if a]
  for a in todo:
    if a not in ANALYSES:
      raise ValueError(f"analyses item {a!r}: allowed {tuple(ANALYSES)}")
  if "background" in todo and data.mask is None:
    raise ValueError("analyses item 'background': the data have no object mask; allowed "
                     "sources with one: digits:<split> (size >= 20), real:, padded_*, npz: with "
                     "'mask'")
  return todo


def run_all(cfg, encs, data, workdir):
  """Runs the analyses named in `cfg.analyses` (keys of `ANALYSES`) for every encoder; writes each
  one's files and `analyses.json` into `workdir` and returns the results dict."""
  todo = check_analyses(cfg, data)
  os.makedirs(workdir, exist_ok=True)
  ctx = _context(cfg, encs, data, workdir)
  results = {"layers": ctx.layers, "encoders": {e.label: e.spec for e in encs}}
  for name, analysis in ANALYSES.items():
    if name in todo:
      results[name] = analysis(ctx)
  _dump(results, os.path.join(workdir, "analyses.json"))
  return results


def check_layer_names(cfg, label, names):
  """The layers to analyse for one encoder whose intermediates are `names`: `cfg.layers` (or
  :func:`default_layers`); raises ValueError naming the field when `cfg.layers`,
  `cfg.density_layer` or `cfg.representation` is not one of them."""
  layers = [l for l in cfg.layers.split(",") if l] or default_layers(names)
  for l in layers + ([cfg.density_layer] if cfg.density_layer else []):
    if l not in names:
      raise ValueError(f"layer {l!r}: not an intermediate of encoder {label!r}; "
                       f"allowed {names}")
  if cfg.representation != "embedding" and cfg.representation not in names:
    raise ValueError(f"representation={cfg.representation!r}: not an intermediate of encoder "
                     f"{label!r}; allowed 'embedding' or one of {names}")
  return layers


def abstract_intermediates(module, input_shape, variables=None, dtype=jnp.float32):
  """`{name: ShapeDtypeStruct}` of `module`'s intermediates on one (H, W, C) input, by abstract
  evaluation (`jax.eval_shape`: nothing is initialised or computed)."""
  x = jax.ShapeDtypeStruct((1, *input_shape), dtype)
  if variables is None:
    fn = lambda x: module.apply(module.init(jax.random.PRNGKey(0), x), x, train=False)  # noqa: E731
  else:
    fn = lambda x: module.apply(variables, x, train=False)  # noqa: E731
  return jax.eval_shape(fn, x)[1]


def _context(cfg, encs, data, workdir):
  """Checks the configured layers against every encoder and streams the data through each one."""
  names, shapes, layers, sel_layers = {}, {}, {}, {}
  for e in encs:
    inter = abstract_intermediates(e.module, data.images.shape[1:], e.variables,
                                   data.images.dtype)
    names[e.label] = list(inter)
    shapes[e.label] = {k: tuple(v.shape) for k, v in inter.items()}
    layers[e.label] = check_layer_names(cfg, e.label, names[e.label])
    sel_layers[e.label] = layers[e.label] + (
        [cfg.representation] if cfg.representation in names[e.label] else [])
  stats, reps = {}, {}
  for enc in encs:
    for dom in sorted(set(data.domains.tolist())):
      x, y = data.subset(dom)
      stats[enc.label, dom], reps[enc.label, dom] = collect(
          enc, x, y, data.num_classes, sel_layers[enc.label], cfg.representation, cfg.batch_size)
  return Context(cfg, encs, data, workdir, layers, sel_layers, shapes, stats, reps)
