"""Runs every encoder analysis of Section 5 / Appendices F.2, F.3, G.1, G.2 and writes PNG + JSON.

`run_all(cfg, encoders, data, workdir)` takes any encoders with the featcon contract (see
`encoders.py`) and an `ImageSet`, and writes into `workdir`:
- activation_rates.{json,png}   F.2: class activation rates per block;
- selectivity.{json,png}        F.3 / Figure 5: mean neuron selectivity per layer, ID vs OOD;
- density.{json,png}            G.2 / Figure 15: histogram of each unit's mean activation;
- domain.{json,png}             G.1 / Table 5, Figure 14: domain-probe error and 2-D PCA;
- gradcam.{json,png}            Figure 6(a, b): heatmaps for ID, OOD and background-only shift.
"""
import functools
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from featcon import progress as progress_lib
from featcon.analysis import gradcam
from featcon.analysis import metrics
from featcon.analysis import plots
from featcon.analysis import representation


def default_layers(names):
  """Post-nonlinearity layers of F.2: ViT "block{i}_mlp_act", else ResNet "layer{i}" (+ "stem")."""
  mlp = sorted((n for n in names if n.endswith("_mlp_act")), key=_natural)
  if mlp:
    return mlp
  return sorted((n for n in names if re.fullmatch(r"stem|layer\d+", n)),
                key=lambda n: (n != "stem", _natural(n)))


def _natural(s):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def default_cam_layer(names, shapes=None, min_side=4):
  """The last block's output: "layer{max}" for ResNets, "block{max}" for ViTs.

  With `shapes` (name -> shape), ResNet stages whose map is smaller than `min_side`² are skipped
  (a Grad-CAM of a 1×1 map is flat: featcon.clip's "tiny-rn" has layer4 at 1×1 on 32-px inputs),
  unless no stage is that large.
  """
  for pat in (r"layer\d+", r"block\d+"):
    cands = sorted((n for n in names if re.fullmatch(pat, n)), key=_natural)
    if shapes is not None and pat.startswith("layer"):
      big = [n for n in cands if len(shapes[n]) == 4 and min(shapes[n][1:3]) >= min_side]
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
  with open(path, "w") as f:
    json.dump(obj, f, indent=1)


def run_all(cfg, encs, data, workdir, progress=True):
  """Runs the analyses named in `cfg.analyses` for every encoder; returns the results dict.

  With `progress`, a bar over the (encoder, domain) activation passes and a line on stderr.
  """
  os.makedirs(workdir, exist_ok=True)
  allowed = ("rates", "selectivity", "density", "domain", "gradcam")
  todo = [a for a in cfg.analyses.split(",") if a]
  for a in todo:
    if a not in allowed:
      raise ValueError(f"analyses item {a!r}: allowed {allowed}")
  k = data.num_classes
  names, shapes, layers, sel_layers = {}, {}, {}, {}
  for e in encs:
    inter = jax.eval_shape(
        lambda e=e: e.module.apply(e.variables, jnp.asarray(data.images[:1]), train=False))[1]
    names[e.label] = list(inter)
    shapes[e.label] = {k: tuple(v.shape) for k, v in inter.items()}
    layers[e.label] = [l for l in cfg.layers.split(",") if l] or default_layers(names[e.label])
    for l in layers[e.label] + ([cfg.density_layer] if cfg.density_layer else []):
      if l not in names[e.label]:
        raise ValueError(f"layer {l!r}: not an intermediate of encoder {e.label!r}; "
                         f"allowed {names[e.label]}")
    if cfg.representation != "embedding" and cfg.representation not in names[e.label]:
      raise ValueError(f"representation={cfg.representation!r}: not an intermediate of encoder "
                       f"{e.label!r}; allowed 'embedding' or one of {names[e.label]}")
    sel_layers[e.label] = layers[e.label] + (
        [cfg.representation] if cfg.representation in names[e.label] else [])
  stats, reps = {}, {}
  doms = sorted(set(data.domains.tolist()))
  bar = progress_lib.Bar(len(encs) * len(doms), "analysis: activations", progress, unit="set")
  bar.start()
  for enc in encs:
    for dom in doms:
      x, y = data.subset(dom)
      stats[enc.label, dom], reps[enc.label, dom] = collect(
          enc, x, y, k, sel_layers[enc.label], cfg.representation, cfg.batch_size)
      bar()
  bar.close()
  progress_lib.stage(f"analysis: running {', '.join(todo)} for {len(encs)} encoder(s)", progress)
  results = {"layers": layers, "encoders": {e.label: e.spec for e in encs}}

  if "rates" in todo:
    out, panels = {}, {}
    for e in encs:
      for l in layers[e.label]:
        st = stats[e.label, 0][l]
        out.setdefault(l, {})[e.label] = {
            "mean_rate": float(metrics.activation_rates(st).mean()),
            "rate_asymmetry": float(metrics.rate_asymmetry(st).mean()),
            "class_mean_rates": np.asarray(metrics.class_mean_rates(st)).round(4).tolist()}
        panels.setdefault(l, {})[e.label] = metrics.activation_rates(st)
    _dump(out, os.path.join(workdir, "activation_rates.json"))
    plots.histograms(panels, os.path.join(workdir, "activation_rates.png"), range_=(0, 1),
                     xlabel="class activation rate p_k(c)")
    results["rates"] = out

  if "selectivity" in todo:
    out, bars = {}, {}
    for e in encs:
      for l in sel_layers[e.label]:
        for dom, dname in enumerate(data.domain_names):
          if (e.label, dom) not in stats:
            continue
          v = float(metrics.selectivity(metrics.class_means(stats[e.label, dom][l]),
                                        cfg.selectivity_mode).mean())
          out.setdefault(l, {}).setdefault(e.label, {})[dname] = v
          bars.setdefault(f"{l} {'ID' if dom == 0 else 'OOD' + str(dom)}", {})[e.label] = v
    _dump({"mode": cfg.selectivity_mode, "mean_selectivity": out},
          os.path.join(workdir, "selectivity.json"))
    plots.grouped_bars(bars, os.path.join(workdir, "selectivity.png"), "mean selectivity")
    results["selectivity"] = out

  if "density" in todo:
    out, panel = {}, {}
    for e in encs:
      dl = cfg.density_layer or layers[e.label][0]
      if dl not in stats[e.label, 0]:  # one more pass for a layer outside the rate layers
        x, y = data.subset(0)
        stats[e.label, 0][dl] = collect(e, x, y, k, [dl], cfg.representation,
                                        cfg.batch_size)[0][dl]
      st = stats[e.label, 0][dl]
      out[e.label] = {"layer": dl, **metrics.density_summary(st, cfg.density_threshold)}
      panel[f"{e.label} ({dl})"] = metrics.unit_means(st)
    _dump(out, os.path.join(workdir, "density.json"))
    plots.histograms({"unit mean activation (ID)": panel},
                     os.path.join(workdir, "density.png"), bins=30, xlabel="mean activation")
    results["density"] = out

  if "domain" in todo:
    out, panels = {}, {}
    for i, e in enumerate(encs):
      doms = sorted(d for (lab, d) in reps if lab == e.label)
      x = np.concatenate([reps[e.label, d] for d in doms])
      dom = np.concatenate([np.full(reps[e.label, d].shape[0], d) for d in doms])
      out[e.label] = representation.domain_error(
          x, dom, jax.random.PRNGKey(cfg.seed + i), cfg.holdout, cfg.probe_l2)
      proj, expl = representation.pca_2d(x)
      out[e.label]["pca_explained"] = np.asarray(expl).tolist()
      panels[e.label] = (proj, dom, data.domain_names)
    _dump({"representation": cfg.representation, **out}, os.path.join(workdir, "domain.json"))
    plots.scatter_2d(panels, os.path.join(workdir, "domain.png"))
    results["domain"] = out

  if "gradcam" in todo:
    results["gradcam"] = _gradcam(cfg, encs, data, shapes, workdir)
  _dump(results, os.path.join(workdir, "analyses.json"))
  progress_lib.stage(f"analysis: {', '.join(todo)} done for {', '.join(e.label for e in encs)}; "
                     f"wrote {os.path.join(workdir, 'analyses.json')} and the figures", progress)
  return results


def _gradcam(cfg, encs, data, shapes, workdir):
  """Figure 6: heatmaps of the ID class score; quantitatively, CAM mass on the object region."""
  n = cfg.cam_examples
  x_id, y_id = data.subset(0)
  x_ood, y_ood = data.subset(1) if (data.domains == 1).any() else (x_id[:0], y_id[:0])
  rows = {"ID": (x_id[:n], y_id[:n])}
  if data.shifted_images is not None:  # the ID row shows the originals of the shifted images
    si = np.asarray(data.shifted_index)[:n]
    rows["ID"] = (data.images[si], data.labels[si])
    rows["ID, background shifted"] = (data.shifted_images[:len(si)], data.labels[si])
  rows["OOD"] = (x_ood[:n], y_ood[:n])
  out = {"head": cfg.cam_head}
  images, cams = {}, {}
  for e in encs:
    layer = cfg.cam_layer or default_cam_layer(list(shapes[e.label]), shapes[e.label])
    out.setdefault(e.label, {})["layer"] = layer
    emb_id = collect(e, x_id, y_id, data.num_classes, [], "embedding", cfg.batch_size)[1]
    if cfg.cam_head == "probe":
      probe = representation.fit_ridge_probe(emb_id, y_id, data.num_classes, cfg.probe_l2)
      score_fn = lambda emb, p=probe: representation.probe_scores(p, emb)  # noqa: E731
      out.setdefault(e.label, {})["probe_train_error"] = float(
          representation.probe_error(probe, emb_id, y_id))
    elif cfg.cam_head == "identity":
      score_fn = lambda emb: emb  # noqa: E731
    else:
      raise ValueError(f"cam_head={cfg.cam_head!r}: allowed ('probe', 'identity')")
    producer = None
    for r, (x, y) in rows.items():
      if not x.shape[0]:
        continue
      if producer is None:
        producer = gradcam.find_producer(e.module, e.variables, jnp.asarray(x), layer,
                                         {"train": False})
      c = gradcam.grad_cam(e.module, e.variables, x, layer, score_fn, y, {"train": False},
                           producer)
      images[f"{e.label}: {r}"], cams[f"{e.label}: {r}"] = x, c
      if data.mask is not None:
        out.setdefault(e.label, {})[f"mass_on_object.{r}"] = float(
            gradcam.cam_mass_in_mask(c, data.mask).mean())
  _dump(out, os.path.join(workdir, "gradcam.json"))
  plots.cam_grid(images, cams, os.path.join(workdir, "gradcam.png"))
  return out
