"""What a sweep writes: the tidy table, the summary and the figures.

:func:`tidy_table` turns the engine's per-configuration metrics (:mod:`featcon.theory.sweeps`)
into one DataFrame row per configuration and log step, with one column per swept field (named
by its last component: ``train.lr`` becomes ``lr``). :func:`write_outputs` writes it as
``results.csv``, the arrays as ``trajectories.npz``, the final-step table of
:func:`summary_table` as ``summary.md`` and the figures of :mod:`featcon.theory.plots`, each
file atomically, and :func:`write_tensorboard` the logged metrics of each configuration as
TensorBoard scalars.
"""
import os
import re
import shutil

import numpy as np
import pandas as pd

from featcon import io
from featcon.theory import simulation


def _swept_columns(expanded):
  cols = []
  for swept, _ in expanded:
    for k in swept:
      if k not in cols:
        cols.append(k)
  return cols


def _short(col):
  return col.split(".")[-1]


def _value(v):
  return list(v) if isinstance(v, tuple) else v


def tidy_rows(expanded, index, metrics, diverged):
  """Rows of the tidy table for configurations ``index`` of a group: one per log step."""
  rows = []
  scalar = [k for k, v in metrics.items() if v.ndim == 2 and k != "step"]
  for j, i in enumerate(index):
    swept, _ = expanded[i]
    m, _ = simulation.finalize({k: v[j] for k, v in metrics.items()},
                               int(diverged[j]) if diverged[j] >= 0 else None)
    for t in range(m["step"].shape[0]):
      row = {"config_id": i}
      row.update({_short(k): (str(_value(v)) if isinstance(v, (tuple, list)) else v)
                  for k, v in swept.items()})
      row["step"] = int(m["step"][t])
      row.update({k: float(m[k][t]) for k in scalar})
      row["diverged_step"] = int(diverged[j])
      rows.append(row)
  return rows


def tidy_table(expanded, all_metrics, diverged, timings):
  """The tidy DataFrame of a sweep: one row per configuration and log step.

  Args:
    expanded: ``[(swept_values, config)]`` of :func:`featcon.theory.plan.expand`.
    all_metrics: per configuration, a dict of arrays over log steps.
    diverged: per configuration, the first non-finite step or -1.
    timings: per compiled group, its timing dict (kept in ``df.attrs["timings"]``).
  """
  rows = []
  for i, m in enumerate(all_metrics):
    rows += tidy_rows(expanded, [i], {k: v[None] for k, v in m.items()}, diverged[i:i + 1])
  df = pd.DataFrame(rows)
  df.attrs["timings"] = timings
  df.attrs["swept"] = [_short(c) for c in _swept_columns(expanded)]
  return df


SUMMARY_NOTE = ("`ood_risk`/`ood_error`: fresh OOD samples; `train_ood_risk`: the fixed set's own "
                "cores with the background redrawn, the public script's reported OOD loss.")


def final_rows(df):
  """Each configuration's last logged row (its own final step: a swept ``train.steps`` gives
  configurations different ones)."""
  if "step" not in df:
    return df
  if "config_id" not in df:
    return df[df["step"] == df["step"].max()]
  return df[df["step"] == df.groupby("config_id")["step"].transform("max")]


def summary_table(df, metrics=("id_risk", "ood_risk", "train_ood_risk", "id_error", "ood_error",
                               "core_corr", "bg_corr", "bg_signed", "asym_frac",
                               "sp_align", "bg_signed_clean")):
  """Final-step metrics per configuration, mean ± std over seeds (a DataFrame of strings); a
  row of one seed shows that seed's value alone (a standard deviation of one value says
  nothing)."""
  last = final_rows(df)
  keys = [c for c in df.attrs.get("swept", []) if c != "seed" and c in last.columns]
  metrics = [m for m in metrics if m in last.columns and last[m].notna().any()]
  if keys:
    g = last.groupby(keys, sort=False)[metrics]
  else:
    g = last.assign(_all="all").groupby("_all")[metrics]
  mean, std, count = g.mean(), g.std(ddof=0), g.size()
  out = mean.copy().astype(object)
  for m in metrics:
    out[m] = [f"{a:.4f}" if c == 1 else f"{a:.4f} ± {b:.4f}"
              for a, b, c in zip(mean[m], std[m], count.values)]
  out.insert(0, "seeds", count.values)
  return out.reset_index()


TENSORBOARD_DIR = "tensorboard"
_RUN_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9=.,_+-]")


def run_name(config_id, swept):
  """The TensorBoard run of configuration ``config_id``: its index (4 digits, so runs sort in
  the sweep's order) and its axis values, ``0003_activation=relu,width=8,seed=1``."""
  label = ",".join(f"{k}={v}" for k, v in swept.items()) or "all"
  return f"{int(config_id):04d}_" + _RUN_NAME_UNSAFE.sub("_", label)


def write_tensorboard(workdir, df):
  """Writes every configuration's logged metrics as TensorBoard scalars: one run per
  configuration (``<workdir>/tensorboard/<run_name>``, its axis values in the name), one scalar
  tag per metric of the tidy table (``id_risk``, ``ood_risk``, ``core_corr``, ``bg_corr``, ...,
  the names of docs/theory.md, "What to measure") at each logged training step; NaN values
  (after a divergence, or a metric a setting lacks) are left out. The folder is rebuilt whole
  on each call (a resumed sweep does not append a second copy of its points): written as
  ``tensorboard.tmp`` and renamed. View with ``tensorboard --logdir <workdir>/tensorboard``.

  Returns:
    the folder written.
  """
  swept = [c for c in df.attrs.get("swept", []) if c in df.columns]
  skip = {"config_id", "step", "diverged_step", *swept}
  metrics = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
  root = os.path.join(workdir, TENSORBOARD_DIR)
  tmp = root + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  for cid, sub in df.groupby("config_id", sort=True):
    first = sub.iloc[0]
    writer = io.MetricsWriter(None, tb_dir=os.path.join(
        tmp, run_name(cid, {c: first[c] for c in swept})))
    values = sub[metrics].to_numpy(np.float64)
    for step, row in zip(sub["step"].to_numpy(), values):
      writer.write({"step": int(step),
                    **{m: float(v) for m, v in zip(metrics, row) if np.isfinite(v)}})
    writer.close()
  shutil.rmtree(root, ignore_errors=True)
  os.replace(tmp, root)
  return root


def seed_note(seeds):
  """What the summary table's cells are, given its ``seeds`` column."""
  seeds = [int(n) for n in seeds]
  if all(n == 1 for n in seeds):
    return "one seed per row: its value."
  if any(n == 1 for n in seeds):
    return "mean ± std over seeds (std with ddof 0); rows of one seed: its value."
  return "mean ± std over seeds (std with ddof 0)."


def write_outputs(workdir, df, expanded, all_metrics, diverged, timings, log=print):
  """Writes results.csv, trajectories.npz, summary.md and the figures (all atomic)."""
  io.atomic_write(os.path.join(workdir, "results.csv"), lambda f: df.to_csv(f, index=False))
  arrays = {f"metrics/{k}": stack_metric(all_metrics, k) for k in metric_keys(all_metrics)}
  cols = _swept_columns(expanded)
  for c in cols:
    arrays[f"swept/{c}"] = swept_array([s.get(c) for s, _ in expanded])
  arrays["diverged_step"] = diverged
  io.atomic_write(os.path.join(workdir, "trajectories.npz"),
                  lambda f: np.savez(f, **arrays), binary=True)
  table = summary_table(df)
  versions = io.versions()
  total = sum(t["wall_s"] for t in timings.values())
  md = ["# Sweep summary", "",
        f"{len(all_metrics)} configurations, final step {_final_steps(df)}; "
        + seed_note(table["seeds"]) + " " + SUMMARY_NOTE, "", markdown_table(table),
        "", f"Wall time {total:.1f}s in {len(timings)} group(s). Versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "devices") + "."]
  io.atomic_write(os.path.join(workdir, "summary.md"), lambda f: f.write("\n".join(md)))
  # matplotlib is imported here, not with featcon (0.7 s of `import featcon` otherwise).
  from featcon.theory import plots  # pylint: disable=g-import-not-at-top
  figs = plots.sweep_figures(df, all_metrics, expanded, workdir)
  write_tensorboard(workdir, df)
  log("\n" + table.to_string(index=False))
  log(f"\nwrote {workdir}/results.csv, trajectories.npz, summary.md, "
      f"{len(figs)} figure(s) ({', '.join(os.path.basename(f) for f in figs)}) and "
      f"{TENSORBOARD_DIR}/ (TensorBoard scalars of each configuration)")


def _final_steps(df):
  """``"600"``, or ``"100–200"`` when configurations end at different steps."""
  ends = final_rows(df)["step"]
  lo, hi = int(ends.min()), int(ends.max())
  return f"{hi}" if lo == hi else f"{lo}–{hi}"


def metric_keys(all_metrics):
  """The metric keys of every configuration, in order of first appearance (configurations of
  different depths have different per-layer keys)."""
  keys = []
  for m in all_metrics:
    keys += [k for k in m if k not in keys]
  return keys


def stack_metric(all_metrics, k):
  """Metric ``k`` of every configuration stacked on a leading axis; a configuration without it
  (a shallower network's deeper layers) holds NaN, and one with fewer logs (a swept
  ``train.steps`` or ``train.log_every``) is padded with NaN after its last log."""
  have = {i: np.asarray(m[k]) for i, m in enumerate(all_metrics) if k in m}
  shapes = {a.shape for a in have.values()}
  if len(have) == len(all_metrics) and len(shapes) == 1:
    return np.stack(list(have.values()))
  shape = tuple(max(dims) for dims in zip(*shapes))
  out = np.full((len(all_metrics),) + shape, np.nan, np.result_type(*have.values(), np.float32))
  for i, a in have.items():
    out[(i,) + tuple(slice(0, n) for n in a.shape)] = a
  return out


def swept_array(values):
  """The values of one swept field over configurations as an array of their own dtype.

  Ints stay int64, floats float64, bools bool, strings unicode; tuples (``data.core_radii``)
  become a 2-D float array ``[config, len(tuple)]``.
  """
  values = [tuple(v) if isinstance(v, list) else v for v in values]
  if all(isinstance(v, bool) for v in values):
    return np.asarray(values, bool)
  if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
    return np.asarray(values, np.int64)
  if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
    return np.asarray(values, np.float64)
  if all(isinstance(v, tuple) for v in values) and len({len(v) for v in values}) == 1:
    return np.asarray(values, np.float64)
  return np.asarray([str(_value(v)) for v in values])


def _cell(v):
  if isinstance(v, float):
    v = f"{v:.6g}"
  return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df):
  """``df`` as a GitHub-flavoured Markdown pipe table (no index column; numbers right-aligned).

  Written here rather than with ``DataFrame.to_markdown``, which needs the optional
  ``tabulate`` package.
  """
  cols = [str(c) for c in df.columns]
  rows = [[_cell(v) for v in r] for r in df.itertuples(index=False, name=None)]
  numeric = [df[c].dtype.kind in "iuf" for c in df.columns]
  lines = ["| " + " | ".join(cols) + " |",
           "|" + "|".join(("---:" if n else ":---") for n in numeric) + "|"]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)
