"""The analysis experiment behind `python -m experiments.analyze` (configs/analyze.py).

`run(cfg, workdir)` runs the parts named in `cfg.run`: "padding" (the padded-image experiment of
Appendix F.4, `padding.run_experiment`, into `workdir/padding`), then "encoders" (every encoder
analysis of `suite.ANALYSES` on `cfg.data`, into `workdir/encoders`). With
`cfg.analyse_padding_models`, the first-seed models of the padding experiment's "black" (control)
and "red" (padded) conditions join `cfg.encoders` when they see the same inputs as `cfg.data`.
`summary_text(results)` is the human-readable digest the entry point prints.
"""
import os

from featcon.analysis import datasets
from featcon.analysis import encoders
from featcon.analysis import padding
from featcon.analysis import suite

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


def run(cfg, workdir):
  """Runs the configured parts into `workdir`; returns {part: results}.

  Every config value is checked before any long run.
  """
  parts = [p for p in cfg.run.split(",") if p]
  for p in parts:
    if p not in PARTS:
      raise ValueError(f"run item {p!r}: allowed {PARTS}")
  specs = parse_encoders(cfg.encoders)
  if "padding" in parts:
    padding.check_config(cfg.padding)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(cfg.to_json_best_effort(indent=1))
  results = {}
  data = datasets.load(cfg.data) if "encoders" in parts else None
  if "padding" in parts:
    pad_dir = os.path.join(workdir, "padding")
    summary, runs = padding.run_experiment(cfg.padding, pad_dir)
    results["padding"] = summary
    # Only the digits path's models see the padded-digits inputs that cfg.data describes.
    if (cfg.analyse_padding_models and data is not None and cfg.padding.source == "digits"
        and cfg.padding.size == cfg.data.size):
      specs += _save_padding_models(runs, pad_dir)
  if "encoders" in parts:
    if not specs:
      raise ValueError("encoders='': give at least one 'label=spec'")
    shape = data.images.shape[1:]
    pad_overrides = dict(widths=tuple(cfg.padding.widths), blocks=cfg.padding.blocks,
                         out_dim=data.num_classes)
    encs = [encoders.load(label, spec, shape, cfg.seed,
                          pad_overrides if encoders.parse_spec(spec)[0] == "small-resnet" else None)
            for label, spec in specs]
    results["encoders"] = suite.run_all(cfg, encs, data, os.path.join(workdir, "encoders"))
  return results


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
    lines.append(f"  {label}:")
    lines += [f"    {it}" for it in items]
  return lines


def summary_text(results):
  """The headline numbers of `run`'s results as text (the JSON files hold all of them)."""
  lines = []
  if "padding" in results:
    lines += _padding_lines(results["padding"])
  if "encoders" in results:
    lines += _encoder_lines(results["encoders"])
  return "\n".join(lines)

