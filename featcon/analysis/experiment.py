"""The analysis experiment behind `python -m experiments.analyze` (configs/analyze.py).

`run(cfg, workdir)` runs the parts named in `cfg.run`: "padding" (the padded-image experiment of
Appendix F.4, `padding.run_experiment`, into `workdir/padding`), then "encoders" (every encoder
analysis of `suite.ANALYSES` on `cfg.data`, into `workdir/encoders`). With
`cfg.analyse_padding_models`, the first-seed models of the padding experiment's "black" (control)
and "red" (padded) conditions join `cfg.encoders` when they see the same inputs as `cfg.data`.
With `cfg.real_run` (an `experiments.real_experiment` workdir), that run's models join the
encoders (`real_run_encoders`). `summary_text(results)` is the human-readable digest the entry
point prints; encoders labelled "<name>_s<seed>" are also summarised as mean ± std over seeds.
"""
import glob
import os
import re
import time

import numpy as np

from featcon import io
from featcon import progress as progress_lib
from featcon.analysis import datasets
from featcon.analysis import encoders
from featcon.analysis import metrics
from featcon.analysis import padding
from featcon.analysis import suite
from featcon.distill import checks

PARTS = ("encoders", "padding")
PADDING_MODELS = {"black": "control", "red": "padded"}   # condition → encoder label


def parse_encoders(text):
  """'a=spec,b=spec' → [(label, spec)]; raises ValueError naming the bad item."""
  out = []
  for item in (t for t in text.split(",") if t):
    label, sep, spec = item.partition("=")
    if not sep or not label or not spec:
      raise ValueError(f"encoders item {item!r}: expected 'label=spec'")
    encoders.parse_spec(spec)
    out.append((label, spec))
  return out


def real_run_encoders(root):
  """The models of an `experiments.real_experiment` workdir as (label, spec) pairs: "teacher"
  (the first seed's, as its probes used it), "student_s<seed>" (every seed's distilled student),
  "random_s<seed>" and "supervised_s<seed>" (the random-init and supervised-from-scratch probe
  rows, where the run has them), with the architectures the run recorded."""
  root = os.path.abspath(root)
  seeds = sorted((int(m.group(1)) for d in glob.glob(os.path.join(root, "s*"))
                  if (m := re.fullmatch(r"s(\d+)", os.path.basename(d)))
                  and os.path.isdir(os.path.join(d, "main", "student", "checkpoints"))))
  if not seeds:
    raise ValueError(f"real_run={root!r}: no s<seed>/main/student/checkpoints there; give the "
                     "--workdir of experiments.real_experiment")
  def arch(wd, role):
    r = encoders.recorded_run(os.path.join(wd, role))
    return r[2].model[role] if r else None
  main0 = os.path.join(root, f"s{seeds[0]}", "main")
  out = [("teacher", f"{arch(main0, 'teacher')}@{main0}/teacher")]
  out += [(f"student_s{s}", f"{arch(os.path.join(root, f's{s}', 'main'), 'student')}@"
           f"{root}/s{s}/main/student") for s in seeds]
  for row in ("random", "supervised"):
    for s in seeds:
      wd = os.path.join(root, f"s{s}", row)
      a = arch(wd, "teacher") if os.path.isdir(wd) else None
      if a:
        out.append((f"{row}_s{s}", f"{a}@{wd}/teacher"))
  return out


def encoder_overrides(cfg, arch, num_classes):
  """Constructor overrides of an encoder built from its arch name: the padding experiment's
  SmallResNet shape with `num_classes` outputs (the data's) for "small-resnet", else
  `cfg.encoder_overrides` (a distillation run's encoders use the run's own)."""
  if arch == "small-resnet":
    return dict(widths=tuple(cfg.padding.widths), blocks=cfg.padding.blocks,
                out_dim=num_classes)
  ov = cfg.get("encoder_overrides", None)
  return dict(ov.to_dict() if hasattr(ov, "to_dict") else (ov or {}))


def check_normalization(encs, data):
  """Refuses encoders that expect another input scaling than the data has (EfficientNet-Lite's
  `input_normalization` against `ImageSet.normalization`), before any analysis runs."""
  for e in encs:
    want = getattr(e.module, "input_normalization", None)
    if want is not None and want != data.normalization:
      raise ValueError(
          f"encoder {e.label!r} ({e.spec}) has input_normalization={want!r} but the images of "
          f"data.source are normalised as {data.normalization!r}; give encoders built from an arch "
          f"name encoder_overrides input_normalization={data.normalization!r} (as "
          "configs/analyze.py:real does), or use a data source with that normalisation")


# Every numeric and choice field of configs/analyze.py (names, layers and data sources are
# checked against the encoders and registries below).
FIELDS = (
    ("seed", checks.COUNT), ("batch_size", checks.POSITIVE_INT),
    ("analyse_padding_models", checks.boolean()),
    ("selectivity_mode", checks.choice(*metrics.SELECTIVITY_MODES)),
    ("density_threshold", checks.real(0.0)), ("holdout", checks.fraction()),
    ("probe_l2", checks.real(0.0)), ("cam_head", checks.choice("probe", "identity")),
    ("cam_examples", checks.POSITIVE_INT), ("cam_mass_examples", checks.COUNT),
    ("data.seed", checks.COUNT), ("data.n_per_domain", checks.POSITIVE_INT),
    ("data.n_shift", checks.COUNT), ("data.size", checks.POSITIVE_INT),
    ("data.pad", checks.COUNT), ("data.jitter", checks.real(0.0)),
    ("padding.n_train", checks.COUNT), ("padding.widths", checks.ints(1)),
    ("padding.blocks", checks.POSITIVE_INT), ("padding.steps", checks.POSITIVE_INT),
    ("padding.batch_size", checks.POSITIVE_INT), ("padding.learning_rate", checks.LR),
    ("padding.weight_decay", checks.real(0.0)), ("padding.flip", checks.boolean()),
    ("padding.jitter", checks.real(0.0)), ("padding.seeds", checks.ints(0)),
)


def run(cfg, workdir):
  """Runs the configured parts into `workdir`; returns {part: results}.

  Every config value is checked before any long run (:data:`FIELDS`, then the names).
  """
  checks.check_table(cfg, FIELDS)
  parts = [p for p in cfg.run.split(",") if p]
  for p in parts:
    if p not in PARTS:
      raise ValueError(f"run item {p!r}: allowed {PARTS}")
  specs = parse_encoders(cfg.encoders)
  if cfg.get("real_run", ""):
    extra = real_run_encoders(cfg.real_run)
    labels = {l for l, _ in extra}
    specs = [(l, s) for l, s in specs if l not in labels] + extra
  if "padding" in parts:
    padding.check_config(cfg.padding)
  data = datasets.load(cfg.data) if "encoders" in parts else None
  adds_padding_models = "padding" in parts and _adds_padding_models(cfg, data)
  if "encoders" in parts:
    if not specs:
      raise ValueError("encoders='': give at least one 'label=spec'")
    suite.check_analyses(cfg, data)
    _check_encoder_names(cfg, specs, data, adds_padding_models)
  os.makedirs(workdir, exist_ok=True)
  t0 = time.time()
  io.atomic_write(os.path.join(workdir, "config.json"),
                  lambda f: f.write(cfg.to_json_best_effort(indent=1)))
  results = {}
  if "padding" in parts:
    pad_dir = os.path.join(workdir, "padding")
    summary, runs = padding.run_experiment(cfg.padding, pad_dir)
    results["padding"] = summary
    if adds_padding_models:
      specs += _save_padding_models(runs, pad_dir)
  if "encoders" in parts:
    shape = data.images.shape[1:]
    encs = []
    for label, spec in specs:
      ov = encoder_overrides(cfg, encoders.parse_spec(spec)[0], data.num_classes)
      encs.append(encoders.load(label, spec, shape, cfg.seed, ov))
    check_normalization(encs, data)
    results["encoders"] = suite.run_all(cfg, encs, data, os.path.join(workdir, "encoders"))
    table = markdown_table(results["encoders"]) + "\n"
    io.atomic_write(os.path.join(workdir, "encoders", "table.md"), lambda f: f.write(table))
  progress_lib.stage(progress_lib.files_line("analyze", workdir, t0))
  return results


def _adds_padding_models(cfg, data):
  """Whether the padding experiment's models join the encoders: only the digits path's models
  see the padded-digits inputs that `cfg.data` describes."""
  return bool(cfg.analyse_padding_models and data is not None and cfg.padding.source == "digits"
              and cfg.padding.size == cfg.data.size)


def _check_encoder_names(cfg, specs, data, with_padding_models):
  """Every encoder spec parses and `cfg.layers` / `density_layer` / `representation` name
  intermediates of every encoder built from an arch name (abstract evaluation, nothing
  initialised), before any work; a recorded run's model is checked when it is loaded.
  `with_padding_models`: the padding experiment's SmallResNets will join the encoders."""
  planned = [(label, *encoders.parse_spec(spec)) for label, spec in specs]
  if with_padding_models:
    planned += [(label, "small-resnet", None) for label in PADDING_MODELS.values()]
  for label, arch, path in planned:
    if path and encoders.recorded_run(path, label) is not None:
      continue
    module = encoders.create(arch, **encoder_overrides(cfg, arch, data.num_classes))
    names = list(suite.abstract_intermediates(module, data.images.shape[1:],
                                              dtype=data.images.dtype))
    suite.check_layer_names(cfg, label, names)


def _save_padding_models(runs, pad_dir):
  """Saves the first-seed model of each condition in `PADDING_MODELS`; returns their specs."""
  specs = []
  for cond, label in PADDING_MODELS.items():
    r = next((r for r in runs if r.condition == cond), None)
    if r is not None:
      path = os.path.join(pad_dir, f"{cond}_seed{r.seed}.msgpack")
      encoders.save({"params": r.params}, path)
      specs.append((label, f"small-resnet@{path}"))
  return specs


def _pm(v):
  """[mean, std] → 'mean ± std' (std omitted when 0, e.g. one seed)."""
  return f"{v[0]:.3f}" + (f" ± {v[1]:.3f}" if v[1] else "")


def _padding_lines(summary):
  lines = ["padded-image experiment (F.4), mean ± std over seeds:"]
  for cond, m in summary.items():
    filt = [k for k in ("filter.chroma_share", "filter.pad_response", "filter.pad_share")
            if k in m]
    acc = [k for k in m if k.startswith("accuracy.")]
    lines.append(f"  {cond}: final loss {_pm(m['final_loss'])}")
    lines.append("    filters (init → trained): " + ", ".join(
        f"{k[len('filter.'):]} {_pm(m['init_' + k])} → {_pm(m[k])}" for k in filt))
    lines.append("    accuracy: " + ", ".join(f"{k[len('accuracy.'):]} {_pm(m[k])}" for k in acc))
    lines.append("    colour share of variance: " + ", ".join(
        f"{k[len('colour_var_frac_'):]} {_pm(m[k])}" for k in m if k.startswith("colour_var_frac_")))
  return lines


def _encoder_lines(res):
  lines = ["encoder analyses:"]
  for label in res["encoders"]:
    items = []
    if "rates" in res:
      items.append("mean activation rate " + ", ".join(
          f"{l} {v[label]['mean_rate']:.3f}" for l, v in res["rates"].items() if label in v))
    if "selectivity" in res:
      items.append("selectivity " + ", ".join(
          f"{l} " + "/".join(f"{s:.3f}" for s in v[label].values())
          for l, v in res["selectivity"].items() if label in v) + " (per domain)")
    if "density" in res:
      d = res["density"][label]
      items.append(f"density ({d['layer']}) " + ", ".join(
          f"{k} {v:.3f}" for k, v in d.items() if k not in ("layer", "threshold")))
    if "domain" in res:
      d = res["domain"][label]
      items.append(f"domain-probe error {d['error']:.3f} (chance {d['chance_error']:.3f})")
    if "gradcam" in res:
      g = res["gradcam"][label]
      mass = ", ".join(f"{k[len('mass_on_object.'):]} {v:.3f}" for k, v in g.items()
                       if k.startswith("mass_on_object."))
      items.append(f"Grad-CAM ({g['layer']})" + (f" mass on object {mass}" if mass else ""))
    if label in res.get("background", {}).get("shift_sensitivity", {}):
      d = res["background"]["shift_sensitivity"][label]
      items.append(f"background-only shift moves the embedding by {d['rel_change']:.3f} of its "
                   f"norm ({d['ratio']:.3f} of the distance between items)")
    lines.append(f"  {label}:")
    lines += [f"    {it}" for it in items]
  return lines


def seed_groups(labels):
  """{"<name>": ["<name>_s0", "<name>_s1", ...]} for labels that carry a seed suffix."""
  groups = {}
  for l in labels:
    m = re.fullmatch(r"(.+)_s(\d+)", l)
    if m:
      groups.setdefault(m.group(1), []).append(l)
  return groups


def headline_numbers(res):
  """{label: {measure: value}} of the encoder analyses' scalar results (the rows of a table)."""
  out = {}
  for label in res["encoders"]:
    row = out.setdefault(label, {})
    for layer, v in res.get("rates", {}).items():
      if label in v:
        row[f"activation rate (ID) | {layer}"] = v[label]["mean_rate"]
        row[f"rate asymmetry (ID) | {layer}"] = v[label]["rate_asymmetry"]
    for layer, v in res.get("selectivity", {}).items():
      for dom, x in v.get(label, {}).items():
        row[f"selectivity, {dom} | {layer}"] = x
    if label in res.get("density", {}):
      d = res["density"][label]
      for k, x in d.items():
        if k not in ("layer", "threshold"):
          row[f"density: {k} (ID) | {d['layer']}"] = x
    if label in res.get("domain", {}):
      d = res["domain"][label]
      row["domain-probe hold-out error | representation"] = d["error"]
      row["domain-probe chance error | representation"] = d["chance_error"]
      row["PCA: variance on PC1 | representation"] = d["pca_explained"][0]
    if label in res.get("gradcam", {}):
      g = res["gradcam"][label]
      if "probe_train_error" in g:
        row[f"class probe train error (Grad-CAM head) | {g['layer']}"] = g["probe_train_error"]
      for k, x in g.items():
        if k.startswith("mass_on_object."):
          row[f"Grad-CAM mass on object, {k[len('mass_on_object.'):]} | {g['layer']}"] = x
    b = res.get("background", {})
    for layer, v in b.get("activation_on_object", {}).items():
      for dom, x in v.get(label, {}).items():
        row[f"activation share on object, {dom} | {layer}"] = x
    if label in b.get("shift_sensitivity", {}):
      d = b["shift_sensitivity"][label]
      row["background shift: relative change | representation"] = d["rel_change"]
      row["background shift: cosine | representation"] = d["cosine"]
      row["background shift / item change | representation"] = d["ratio"]
  return out


def grouped_numbers(res):
  """`headline_numbers` with every seed group ("<name>_s<seed>") reduced to [mean, std, n]
  (population std over seeds) and single encoders to [value, 0, 1]; columns in label order."""
  rows = headline_numbers(res)
  groups = seed_groups(rows)
  grouped = {l: g for g, ls in groups.items() for l in ls}
  out = {}
  for label in rows:
    name = grouped.get(label, label)
    if name in out:
      continue
    members = groups.get(name, [label])
    out[name] = {}
    for k in rows[members[0]]:
      vals = np.array([rows[m][k] for m in members if k in rows[m]], np.float64)
      out[name][k] = [float(vals.mean()), float(vals.std()), len(vals)]
  return out


def markdown_table(res):
  """`grouped_numbers` as a markdown table: measure | layer | one column per encoder or seed
  group ("mean ± std" over seeds)."""
  g = grouped_numbers(res)
  names = list(g)
  keys = list(dict.fromkeys(k for n in names for k in g[n]))
  head = [f"{n} (n={next(iter(g[n].values()))[2]})" if next(iter(g[n].values()))[2] > 1 else n
          for n in names]
  lines = ["| measure | layer | " + " | ".join(head) + " |",
           "|---|---|" + "---|" * len(names)]
  for k in keys:
    measure, layer = k.split(" | ")
    cells = [(f"{g[n][k][0]:.3f}" + (f" ± {g[n][k][1]:.3f}" if g[n][k][2] > 1 else ""))
             if k in g[n] else "" for n in names]
    lines.append(f"| {measure} | {layer} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def summary_text(results):
  """The headline numbers of `run`'s results as text (the JSON files hold all of them)."""
  lines = []
  if "padding" in results:
    lines += _padding_lines(results["padding"])
  if "encoders" in results:
    lines += _encoder_lines(results["encoders"])
    if seed_groups(results["encoders"]["encoders"]):
      lines += ["", "mean ± std over seeds (encoders '<name>_s<seed>'):",
                markdown_table(results["encoders"])]
  return "\n".join(lines)

