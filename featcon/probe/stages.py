"""Probe and evaluation stages over a finished distillation run directory.

Layout under the workdir: ``features/<model>/*.npz`` (cached frozen features),
``probes/<model>_<kind>.npz`` and ``probes/<model>_<kind>.json`` (selection),
``results.json`` / ``results.md`` / ``scatter.png``, each written atomically (featcon.io).
"""
from __future__ import annotations

import json
import logging
import os

import numpy as np

from featcon import distributed
from featcon import io
from featcon import progress as progress_lib
from featcon import training as train_lib
from featcon.data import refs
from featcon.distill import runs
from featcon.probe import features
from featcon.probe import linear, metrics

log = logging.getLogger("featcon")
PROBE_KINDS = ("adamw", "ridge")


def _models(config) -> list[str]:
  models = [m.strip() for m in config.probe.models.split(",") if m.strip()]
  for m in models:
    if m not in ("teacher", "student"):
      raise ValueError(f"config.probe.models entry {m!r} is not allowed; allowed: teacher, "
                       "student")
  return models


def _features_fn(config, workdir, model):
  """``(ds -> (features, labels)), encoder digest`` of the frozen ``model`` of a run."""
  module, variables = runs.model_variables(config, workdir, model)
  cache = os.path.join(workdir, "features", model)
  rep = config.probe.representation
  digest = features.variables_digest(variables)
  return (lambda ds: features.cached_features(module, variables, ds, config, cache, rep,
                                              encoder_digest=digest)), digest


def probe_stamp(config, model: str, kind: str, encoder_digest: str) -> dict:
  """The provenance stamp (:func:`featcon.io.stamp`) of a trained probe: every field the probe
  stage depends on, the probed model and probe kind, and the digest of the encoder's weights
  (:func:`featcon.probe.features.variables_digest`) whose features it was trained on."""
  return io.stamp({"config": io.result_fields(config, runs.result_ignore("linear_probe")),
                   "model": model, "kind": kind, "encoder": encoder_digest})


def _lambdas(config):
  return [float(v) for v in config.probe.ridge_lambdas.split(",") if v.strip()]


def train_probes(config, workdir: str) -> dict:
  """Fits the gradient-trained and the ridge probe for each model; returns their selections."""
  pc = config.probe
  train_ds = refs.open_dataset(config, config.data.probe_train, "config.data.probe_train")
  val_ds = refs.open_dataset(config, config.data.probe_val, "config.data.probe_val")
  out_dir = os.path.join(workdir, "probes")
  summary = {}
  for model in _models(config):
    feats, digest = _features_fn(config, workdir, model)
    (xt, yt), (xv, yv) = feats(train_ds), feats(val_ds)
    for kind in PROBE_KINDS:
      path = os.path.join(out_dir, f"{model}_{kind}")
      stamp = probe_stamp(config, model, kind, digest)
      done = _cached_probe(path, stamp, xt.shape[1], train_ds.num_classes)
      if distributed.agree(done is not None) and done is not None:  # process 0 decides
        summary[f"{model}_{kind}"] = done
        continue
      if kind == "ridge":
        probe = linear.ridge_probe(xt, yt, xv, yv, train_ds.num_classes, _lambdas(config))
      else:
        wd = pc.weight_decay_teacher if model == "teacher" and pc.weight_decay_teacher >= 0 \
            else pc.weight_decay
        probe = linear.train_linear_probe(
            xt, yt, xv, yv, train_ds.num_classes, lr=pc.lr, weight_decay=wd,
            batch_size=pc.batch_size, epochs=pc.epochs, optimizer=pc.optimizer,
            seed=config.seed, progress=True, desc=f"probe {model}/{kind}")
        writer = train_lib.MetricsWriter(os.path.join(out_dir, "metrics.jsonl"))
        for epoch, acc in enumerate(probe.selected["val_history"], 1):
          writer.write({"stage": f"probe_{model}_{kind}", "step": epoch, "val_accuracy": acc})
        writer.close()
      probe.to_npz(path + ".npz")
      # written last: marks it done
      io.write_json(path + ".json", dict(probe.selected, stamp=stamp), indent=1)
      summary[f"{model}_{kind}"] = probe.selected
      log.info("probe %s/%s: %s", model, kind, selection_text(probe.selected))
  progress_lib.stage(f"linear_probe: {len(summary)} probes in {out_dir}: "
                     f"{', '.join(sorted(summary))} (.npz weights, .json selection); validation "
                     "curves in metrics.jsonl and tensorboard/")
  return summary


def selection_text(selected: dict) -> str:
  """A probe's selection in words: the epoch (of how many) and its ID validation accuracy, or
  the ridge ``lambda``; the validation history stays in the probe's JSON file."""
  acc = f"ID validation accuracy {selected['val_accuracy']:.4f}"
  if "lambda" in selected:
    return f"lambda {selected['lambda']:g} (relative to n), {acc}"
  epochs = len(selected.get("val_history", ())) or "?"
  return f"epoch {selected['epoch']} of {epochs}, {acc}"


def _probe_spec(dim: int, num_classes: int) -> dict:
  return {"kernel": ((dim, num_classes), "f", True), "bias": ((num_classes,), "f", True),
          "kind": ((), None, False)}


def _cached_probe(path: str, stamp: dict, dim: int, num_classes: int):
  """The selection of a probe trained earlier, or None when there is none, its files are
  corrupt or not the shape of this probe, or it was trained under another provenance stamp
  (:func:`probe_stamp`); then its files are removed with a warning naming the reason, and the
  probe is retrained."""
  if not os.path.exists(path + ".json"):
    return None
  try:
    arrays = io.load_npz(path + ".npz", keys=("kernel", "bias", "kind"), fix="it is retrained")
    io.check_arrays(path + ".npz", arrays, _probe_spec(dim, num_classes), "it is retrained")
    selected = io.read_json(path + ".json", fix="it is retrained")
    if not isinstance(selected, dict):
      raise io.CorruptFileError(f"{path + '.json'!r} holds no object; it is retrained")
    diff = io.stamp_diff(selected.pop("stamp", None), stamp)
    if diff:
      raise io.CorruptFileError(f"{path + '.json'!r} was trained under other settings "
                                f"({io.describe_diff(diff)}); it is retrained")
    return selected
  except (io.CorruptFileError, FileNotFoundError) as e:
    log.warning("probe %s cannot be reused (%s); retraining it", path, e)
    for ext in (".json", ".npz"):
      if os.path.exists(path + ext):
        os.remove(path + ext)
    return None


_PROBE_FIX = ("delete it and its .json and rerun `python -m experiments.linear_probe` with the "
              "same --config and --workdir")


def _load_probe(path: str, stamp: dict, dim: int, num_classes: int) -> linear.LinearProbe:
  """A trained probe for the evaluation: refused (naming the file, what is wrong and
  ``experiments.linear_probe``) when missing, corrupt, of another shape, or trained under
  another provenance stamp than the evaluation's config and encoder give."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"no probe at {path!r}: run `python -m experiments.linear_probe` "
                            "with the same --config and --workdir first")
  z = io.load_npz(path, keys=("kernel", "bias", "kind"), fix=_PROBE_FIX)
  io.check_arrays(path, z, _probe_spec(dim, num_classes), _PROBE_FIX)
  record = path[:-len(".npz")] + ".json"
  selected = io.read_json(record, fix=_PROBE_FIX) if os.path.exists(record) else None
  stored = selected.get("stamp") if isinstance(selected, dict) else None
  io.check_stamp(record, stored, stamp, what="a probe",
                 fix="rerun `python -m experiments.linear_probe` with the --config and "
                 "overrides of this evaluation and the same --workdir")
  return linear.LinearProbe(z["kernel"], z["bias"], str(z["kind"]), {})


def _metric(config):
  if config.eval.metric not in metrics.METRICS:
    raise ValueError(f"config.eval.metric={config.eval.metric!r} is not allowed; allowed: "
                     f"{', '.join(metrics.METRICS)}")
  return metrics.METRICS[config.eval.metric]


def baseline_points(config, id_sets, ood_sets, train_ds, val_ds) -> list[dict]:
  """"Standard models trained on ID data" for the effective-robustness fit.

  - "pixels": ridge probes on raw pixels trained on nested random fractions of the ID
    probe-training set (a range of ID accuracies, like Taori et al.'s testbed of ERM models);
  - "csv:PATH": published baseline results, a CSV with columns ``id,ood`` (fractions), e.g.
    the STANDARD / ROBUST_INTV models of Taori et al.'s testbed (Appendix E.1);
  - "none": no fit, no effective robustness.
  """
  kind = config.eval.baseline
  if kind == "none":
    return []
  if kind.startswith("csv:"):
    import pandas as pd  # pylint: disable=g-import-not-at-top
    table = pd.read_csv(kind[4:])
    return [{"label": str(r.get("model", i)), "group": "baseline", "id": float(r["id"]),
             "ood": float(r["ood"])} for i, r in table.iterrows()]
  if kind != "pixels":
    raise ValueError(f"config.eval.baseline={kind!r} is not allowed; allowed: pixels, "
                     "csv:PATH, none")
  metric = _metric(config)
  xt, yt = features.pixel_features(train_ds, config)
  xv, yv = features.pixel_features(val_ds, config)
  evals = [(ds, features.pixel_features(ds, config)) for ds in id_sets + ood_sets]
  perm = np.random.default_rng(config.seed).permutation(len(yt))
  points = []
  for frac in [float(f) for f in config.eval.baseline_fractions.split(",")]:
    idx = perm[:max(train_ds.num_classes, int(frac * len(yt)))]
    probe = linear.ridge_probe(xt[idx], yt[idx], xv, yv, train_ds.num_classes, _lambdas(config))
    accs = {ds.name + ":" + ds.split: metric(linear.predict(probe, x), y, ds.class_groups)
            for ds, (x, y) in evals}
    points.append({"label": f"pixels-ridge n={len(idx)}", "group": "baseline",
                   "id": float(np.mean([accs[d.name + ":" + d.split] for d in id_sets])),
                   "ood": float(np.mean([accs[d.name + ":" + d.split] for d in ood_sets])),
                   "per_set": accs})
  return points


METRIC_NAMES = {"accuracy": "top-1 accuracy (fraction of correct predictions)",
                "macro_f1": "macro-averaged F1 over the classes present"}
ER_DEFINITION = ("ER = OOD - sigmoid(a logit(ID) + b), with logit(p) = "
                 "ln(p / (1 - p)) and (a, b) the least-squares fit of logit(OOD) = "
                 "a logit(ID) + b over the baseline models (Taori et al. 2020)")


def _baseline_description(config) -> str:
  kind = config.eval.baseline
  if kind == "pixels":
    return (f"ridge probes on raw pixels trained on nested random fractions "
            f"{config.eval.baseline_fractions} of {config.data.probe_train}")
  return f"the published models of {kind[4:]}" if kind.startswith("csv:") else "none"


def caption(config, eval_refs, fit, n_baseline: int) -> str:
  """The caption of ``results.md``: the ID and OOD sets, the metric, the seed, the probes, the
  baseline and the effective-robustness formula with its fitted ``(a, b)``."""
  sets = lambda role: ", ".join(f"{r[0]}:{r[1]}" for r in eval_refs if r[2] == role)
  limit = (f" (the first {config.data.eval_limit} images of each set)"
           if config.data.eval_limit > 0 else "")
  text = [f"ID: {sets('id')}. OOD: {sets('ood')}; a column over several sets is their mean"
          f"{limit}. Metric: {METRIC_NAMES.get(config.eval.metric, config.eval.metric)}. "
          f"Seeds: 1 (seed {config.seed}; one run, no average over seeds).",
          f"Probes: linear classifiers on the frozen `{config.probe.representation}` features "
          f"of each encoder, trained on {config.data.probe_train} and selected on "
          f"{config.data.probe_val}: adamw (AdamW, {config.probe.epochs} epochs, the epoch of "
          f"best ID validation {config.eval.metric}), ridge (closed form, the lambda of best ID "
          f"validation {config.eval.metric} among {config.probe.ridge_lambdas}). OOD/ID: the "
          "ratio of the two columns."]
  if fit is None:
    text.append(f"Eff. robustness: not computed (config.eval.baseline={config.eval.baseline!r}"
                f"{'' if config.eval.baseline == 'none' else ', fewer than 2 baseline models'}).")
  else:
    text.append(f"Eff. robustness: {ER_DEFINITION}; here (a, b) = ({fit[0]:.4f}, {fit[1]:+.4f}) "
                f"from {n_baseline} baseline models: {_baseline_description(config)}.")
  return "\n".join(text)


def evaluate(config, workdir: str) -> dict:
  """Accuracy of every probe on every eval set; ID/OOD averages; baseline fit and effective
  robustness; writes results.json, results.md (:func:`caption`, then the table) and
  scatter.png."""
  eval_refs = refs.eval_refs(config)
  sets = {r: refs.open_dataset(config, f"{r[0]}:{r[1]}", "config.data.eval_sets",
                               limit=config.data.eval_limit) for r in eval_refs}
  id_sets = [ds for r, ds in sets.items() if r[2] == "id"]
  ood_sets = [ds for r, ds in sets.items() if r[2] == "ood"]
  if not id_sets or not ood_sets:
    raise ValueError(f"config.data.eval_sets={config.data.eval_sets!r} needs at least one id "
                     "and one ood set")
  metric = _metric(config)
  rows = []
  probe_train = refs.open_dataset(config, config.data.probe_train, "config.data.probe_train")
  for model in _models(config):
    feats, digest = _features_fn(config, workdir, model)
    fx = {r: feats(ds) for r, ds in sets.items()}
    dim = next(iter(fx.values()))[0].shape[1]
    for kind in PROBE_KINDS:
      probe = _load_probe(os.path.join(workdir, "probes", f"{model}_{kind}.npz"),
                          probe_stamp(config, model, kind, digest), dim, probe_train.num_classes)
      accs = {f"{r[0]}:{r[1]}": metric(linear.predict(probe, fx[r][0]), fx[r][1],
                                       sets[r].class_groups) for r in eval_refs}
      rows.append({"label": f"{model} ({config.model.teacher if model == 'teacher' else config.model.student}) {kind}",
                   "group": model, "model": model, "probe": kind,
                   "id": float(np.mean([accs[f"{r[0]}:{r[1]}"] for r in eval_refs if r[2] == "id"])),
                   "ood": float(np.mean([accs[f"{r[0]}:{r[1]}"] for r in eval_refs if r[2] == "ood"])),
                   "per_set": accs})
  train_ds = probe_train
  val_ds = refs.open_dataset(config, config.data.probe_val, "config.data.probe_val")
  base = baseline_points(config, id_sets, ood_sets, train_ds, val_ds)
  fit = None
  if len(base) >= 2:
    fit = metrics.fit_baseline([p["id"] for p in base], [p["ood"] for p in base])
    for p in rows + base:
      p["effective_robustness"] = float(metrics.effective_robustness(p["id"], p["ood"], fit))
  lines = [f"| model | probe | ID {config.eval.metric} | OOD {config.eval.metric} | OOD/ID | "
           "eff. robustness |", "|---|---|---|---|---|---|"]
  for p in rows:
    er = p.get("effective_robustness")
    lines.append(f"| {p['label'].rsplit(' ', 1)[0]} | {p['probe']} | {p['id']:.4f} | "
                 f"{p['ood']:.4f} | {p['ood'] / max(p['id'], 1e-9):.3f} | "
                 f"{'' if er is None else f'{er:+.4f}'} |")
  table = "\n".join(lines)
  primary = [p for p in rows if p["probe"] == config.probe.primary]
  metrics.scatter_plot(primary + base, fit, os.path.join(workdir, "scatter.png"),
                       title=f"{config.model.student} distilled from {config.model.teacher}")
  text = caption(config, eval_refs, fit, len(base))
  results = {"metric": config.eval.metric, "rows": rows, "baseline": base, "baseline_fit": fit,
             "table_md": table, "caption": text,
             "eval_sets": [":".join(r) for r in eval_refs],
             "config": json.loads(config.to_json_best_effort()),
             "stamp": io.stamp(io.result_fields(config, runs.result_ignore("evaluate"))),
             "versions": io.versions()}
  io.write_json(os.path.join(workdir, "results.json"), results, indent=1, sort_keys=True)
  io.atomic_write(os.path.join(workdir, "results.md"),
                  lambda f: f.write(text + "\n\n" + table + "\n"))
  progress_lib.stage(f"evaluate: wrote {workdir}/results.json, results.md and scatter.png")
  return results
