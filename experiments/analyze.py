"""Entry point of the deep-network analyses; see configs/analyze.py for command lines."""
import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from featcon import distributed
from featcon.analysis import datasets
from featcon.analysis import encoders
from featcon.analysis import padding
from featcon.analysis import suite

_CONFIG = config_flags.DEFINE_config_file("config", "configs/analyze.py", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for PNG and JSON outputs.")

distributed.add_flags(cpu_devices=1)  # deep stages: docs/scaling.md

PARTS = ("encoders", "padding")


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


def main(cfg, workdir):
  """Runs the configured parts into `workdir`; returns {part: results}."""
  parts = [p for p in cfg.run.split(",") if p]
  for p in parts:
    if p not in PARTS:
      raise ValueError(f"run item {p!r}: allowed {PARTS}")
  specs = parse_encoders(cfg.encoders)
  if "padding" in parts:
    padding.check_config(cfg.padding)   # fail before any long run
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(cfg.to_json_best_effort(indent=1))
  results = {}
  data = datasets.load(cfg.data) if "encoders" in parts else None
  if "padding" in parts:
    pad_dir = os.path.join(workdir, "padding")
    summary, runs = padding.run_experiment(cfg.padding, pad_dir)
    results["padding"] = summary
    # Only the digits path's models see the padded-digits inputs that c.data describes.
    if (cfg.analyse_padding_models and data is not None and cfg.padding.source == "digits"
        and cfg.padding.size == cfg.data.size):
      for cond in ("black", "red"):
        r = next((r for r in runs if r.condition == cond), None)
        if r is not None:
          path = os.path.join(pad_dir, f"{cond}_seed{r.seed}.msgpack")
          encoders.save({"params": r.params}, path)
          specs.append(({"black": "control", "red": "padded"}[cond], f"small-resnet@{path}"))
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


def _main(argv):
  del argv
  distributed.initialize()
  if not _WORKDIR.value:
    raise ValueError("--workdir is required")
  from featcon import training as train_lib  # pylint: disable=g-import-not-at-top
  train_lib.quiet_orbax_logs()
  res = main(_CONFIG.value, _WORKDIR.value)
  print(json.dumps({k: sorted(v) if isinstance(v, dict) else v for k, v in res.items()}))


if __name__ == "__main__":
  app.run(_main)
