"""Figures of the paper's numerical experiments (Figures 3(d), 7, 8, 9, 10) from sweep results.

Every figure names its quantities and the loss on the axes, states the setting in its title,
names its band or error bars in the legend, keeps the legend outside the data and shows every
swept variant: one panel per value of a facet axis when there are more variants than colours
are easy to tell apart (never means over unrelated axes, never a silently dropped series).
"""
import math
import os
import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import numpy as np  # noqa: E402

from featcon import io
from featcon.theory.config import default_config  # noqa: E402
from featcon.theory.results import final_rows  # noqa: E402

# Axis labels of the tidy table's metrics (docs/theory.md, "What to measure"): the quantity,
# then its definition. C_core and C_bg are norms of projections (P = W M), not correlation
# coefficients: they are not bounded by 1 (the public script calls C_core "Avg. Feature Corr.").
LABELS = {
    "core_corr": "C_core: core projection norm, mean_r ‖P_r,core‖₂",
    "bg_corr": "C_bg: background projection norm, mean_r ‖P_r,bg‖₂",
    "bg_signed": "signed background mean: mean over r, j∈S_bg of P_rj",
    "core_align": "core sign alignment, mean sign(a_r) P_rj over j∈S_core",
    "asym_frac": "fraction of asymmetric neurons",
    "act_rate_gap": "activation-rate gap, mean_r |p_r(+1) − p_r(−1)|",
    "id_error": "ID 0-1 error (fraction)",
    "ood_error": "OOD 0-1 error (fraction)",
    "sp_align": "spurious weight: mean sign(a_r) P_rj, j ∈ S_sp",
    "bg_signed_clean": "signed mean of P_rj over uncorrelated background j",
    "ood_move_last": "OOD movement of h_L (× ID–ID distance)",
    "sens_ratio_last": "sensitivity ratio of h_L: bg / core",
    "sens_ratio": "sensitivity ratio bg / core",
    "ood_move": "OOD movement of h_l (× ID–ID distance)",
}
_LOSS_NAMES = {"hinge": "hinge loss", "logistic": "logistic loss", "mse": "squared error"}
_MAX_COLOURS = 6  # more variants than this in one panel: facet by a swept axis


def metric_label(key, loss=None):
  """The axis label of metric ``key``; risks name the training loss when it is known."""
  if key in ("id_risk", "ood_risk", "risk"):
    name = {"id_risk": "ID risk", "ood_risk": "OOD risk"}.get(key, "risk")
    return f"{name} ({_LOSS_NAMES.get(loss, f'{loss} loss')})" if loss else name
  return LABELS.get(key, key.replace("_", " "))


def _wrapped(label, chars=34):
  return "\n".join(textwrap.wrap(label, chars))


# Curves closer than this fraction of a panel's data range are drawn on top of each other.
COINCIDE_FRACTION = 0.01


def coincide_note(series, names):
  """A note naming the variants of a panel whose curves coincide, else "".

  Args:
    series: per variant, an array of values on a common grid (steps or x values).
    names: per variant, its label.

  Returns:
    ``"all 3 curves coincide (largest gap 0.0012)"`` when every pair differs by at most
    :data:`COINCIDE_FRACTION` of the range of all values; ``"coincide: a = b; c = d"`` for the
    groups of such variants when only some do (each compared with its group's first member);
    ``""`` when none do, for a single variant, or for curves on different grids or not finite.
    A legend entry would otherwise name a line nobody can see.
  """
  if len(series) < 2 or len({len(v) for v in series}) != 1:
    return ""
  a = np.asarray(series, np.float64)
  if not np.all(np.isfinite(a)):
    return ""
  tol = COINCIDE_FRACTION * max(float(a.max() - a.min()), 1e-12)
  gap = float(np.max(a.max(axis=0) - a.min(axis=0)))
  if gap <= tol:
    return f"all {len(names)} curves coincide (largest gap {gap:.2g})"
  clusters = []
  for i in range(len(a)):
    for c in clusters:
      if np.max(np.abs(a[i] - a[c[0]])) <= tol:
        c.append(i)
        break
    else:
      clusters.append([i])
  same = [" = ".join(str(names[i]) for i in c) for c in clusters if len(c) > 1]
  return "coincide: " + "; ".join(same) if same else ""


def _with_note(title, note, chars=52):
  """``title`` with ``note`` (wrapped) as further lines: notes go above the axes, never over
  the data."""
  return title + ("\n" + "\n".join(textwrap.wrap(f"({note})", chars)) if note else "")


def _gap(series):
  """The largest gap between the curves ``series`` (0 for curves on different grids, which
  :func:`coincide_note` never calls coinciding)."""
  if len({len(v) for v in series}) != 1:
    return 0.0
  a = np.asarray(series, np.float64)
  return float(np.max(a.max(axis=0) - a.min(axis=0)))


def setting_of(config, swept=()):
  """A one-line description of a simulate config's (nested dict's) fixed (unswept) setting,
  for figure titles."""
  try:
    d, t = config["data"], config["train"]
    parts = [("task", d["task"]), ("regime", d["regime"]), ("n_train", f"n={d['n_train']}"),
             ("d", f"d={d['d']}"), ("k_core", f"K_core={d['k_core']}"),
             ("k_bg", f"K_bg={d['k_bg']}"), ("width", f"width {config['model']['width']}"),
             ("loss", _LOSS_NAMES.get(t["loss"], t["loss"])), ("optimizer", t["optimizer"]),
             ("lr", f"lr {t['lr']:g}")]
  except (KeyError, TypeError):
    return ""
  if d["regime"] == "online":  # fresh samples every step: no training-set size
    swept = list(swept) + ["n_train"]
  return ", ".join(v for k, v in parts if k not in swept)


def _group(df, keys):
  """[(label, {key: value}, sub-frame)] over the distinct values of ``keys`` (in order)."""
  if not keys:
    return [("", {}, df)]
  out = []
  for vals, sub in df.groupby(list(keys), sort=False):
    vals = vals if isinstance(vals, tuple) else (vals,)
    out.append((", ".join(f"{k}={v}" for k, v in zip(keys, vals)), dict(zip(keys, vals)), sub))
  return out


def _axes_keys(df, exclude=("seed",)):
  return [c for c in df.attrs.get("swept", []) if c not in exclude and c in df.columns
          and df[c].nunique() > 1]


def _split(df, keys):
  """(facet keys, colour keys): facet by the leading swept axes until a panel has at most
  ``_MAX_COLOURS`` colours."""
  facet, colour = [], list(keys)
  while len(colour) > 1 and len(df.groupby(colour)) > _MAX_COLOURS:
    facet.append(colour.pop(0))
  return facet, colour


def _seeds(df):
  return int(df["seed"].nunique()) if "seed" in df.columns else 1


def _suptitle(fig, head, setting):
  """``head`` over the setting, wrapped to the width left of the legend."""
  chars = max(40, int(9 * (fig.get_figwidth() - 2.2)))
  fig.suptitle("\n".join(textwrap.wrap(head, chars) + textwrap.wrap(setting, chars)), fontsize=10)


def _outside_legend(fig, handles, title=None):
  fig.legend(handles=handles, loc="outside right upper", fontsize=8, title=title,
             title_fontsize=8, frameon=False)


def curves(df, path, panels=(("id_risk", "ood_risk"), ("core_corr",), ("bg_corr",),
                             ("bg_signed",)), loss=None, setting=""):
  """Fig. 8 / 9: risks and feature correlations over training steps.

  Lines are means over seeds, bands min–max over seeds; in a two-metric panel the first metric
  is solid and the second dashed. One row of panels per value of the facet axes (see module
  docstring).
  """
  keys = _axes_keys(df)
  facet, colour = _split(df, keys)
  rows = _group(df, facet)
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  fig, axes = plt.subplots(len(rows), len(panels), figsize=(3.6 * len(panels) + 2.2,
                                                            2.9 * len(rows) + 0.6),
                           squeeze=False, layout="constrained")
  variants = []
  panel_notes, every_panel_same, gaps = {}, [], []
  for r, (flabel, _, fsub) in enumerate(rows):
    means = {}  # (panel, metric) -> per variant, its mean curve
    groups = _group(fsub, colour)
    for v, (clabel, _, sub) in enumerate(groups):
      c = colours[v % len(colours)]
      if r == 0:
        variants.append(Line2D([], [], color=c, label=clabel or "all"))
      for p_i, (ax, mkeys) in enumerate(zip(axes[r], panels)):
        for j, key in enumerate(mkeys):
          g = sub.groupby("step")[key]
          steps = np.asarray(list(g.groups.keys()))
          ax.plot(steps, g.mean().values, "-" if j == 0 else "--", color=c)
          ax.fill_between(steps, g.min().values, g.max().values, color=c, alpha=0.2, lw=0)
          means.setdefault((p_i, j), []).append(g.mean().values)
    for p_i, (ax, mkeys) in enumerate(zip(axes[r], panels)):
      notes = [coincide_note(means[(p_i, j)], [g[0] for g in groups]) for j in range(len(mkeys))]
      every_panel_same.append(len(groups) > 1 and all(n.startswith("all ") for n in notes))
      gaps.append(max(_gap(means[(p_i, j)]) for j in range(len(mkeys))))
      if len(mkeys) == 2:  # say which line style a note is about
        notes = [f"{('solid', 'dashed')[j]}: {n}" if n else "" for j, n in enumerate(notes)]
      panel_notes[ax] = "; ".join(n for n in notes if n)
      if len(mkeys) == 2 and mkeys[0].startswith("id_") and mkeys[1].startswith("ood_"):
        name = metric_label("risk", loss)
        title = "ID (solid) and OOD (dashed) risk"
      else:
        name = " / ".join(metric_label(k, loss) for k in mkeys)
        title = name.split(":")[0]
      ax.set_ylabel(_wrapped(name), fontsize=8)
      ax.set_xlabel("training step", fontsize=8)
      ax.set_title(title + (f"\n{flabel}" if flabel else ""), fontsize=9)
      ax.tick_params(labelsize=7)
  same_everywhere = bool(every_panel_same) and all(every_panel_same)
  if not same_everywhere:  # the panels where some variants coincide say which
    for ax, note in panel_notes.items():
      ax.set_title(_with_note(ax.get_title(), note), fontsize=9)
  n = _seeds(df)
  extra = [Line2D([], [], color="k", ls="-", label="ID"),
           Line2D([], [], color="k", ls="--", label="OOD")] if any(
               len(p) == 2 for p in panels) else []
  extra.append(Patch(color="k", alpha=0.2, label=f"band: min–max over {n} seed(s)"))
  _outside_legend(fig, variants + extra, title=", ".join(colour) or None)
  head = f"Training curves, mean over {n} seed(s)"
  if same_everywhere:
    head += (f". The {len(variants)} {', '.join(colour)} variants coincide in every panel "
             f"(largest gap {max(gaps):.2g}): their lines lie on top of each other")
  _suptitle(fig, head, setting)
  return io.save_figure(fig, path)


def asymmetry(all_metrics, expanded, df, path, setting=""):
  """Fig. 7: histograms of p_r(+1) − p_r(−1) over neurons at initialisation and at the end,
  pooled over seeds; one panel per variant (all of them, in rows of at most four)."""
  variants = _group(df, _axes_keys(df))
  cols = min(4, len(variants))
  nrows = math.ceil(len(variants) / cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(3.3 * cols + 1.6, 2.8 * nrows + 0.6),
                           squeeze=False, layout="constrained")
  for ax, (label, _, sub) in zip(axes.ravel(), variants):
    ids = sorted(set(sub["config_id"]))
    for t, name in ((0, "init"), (-1, "final")):
      gaps = np.concatenate([
          (all_metrics[i]["act_rate_pos"][t] - all_metrics[i]["act_rate_neg"][t]) for i in ids])
      ax.hist(gaps[np.isfinite(gaps)], bins=40, range=(-1, 1), alpha=0.6, label=name,
              color="tab:gray" if t == 0 else "tab:red")
    ax.set_title(label or "all", fontsize=9)
    ax.set_xlabel("p_r(+1) − p_r(−1)", fontsize=8)
    ax.set_ylabel("neurons (count)", fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in axes.ravel()[len(variants):]:
    ax.set_visible(False)
  _outside_legend(fig, [Patch(color="tab:gray", alpha=0.6, label="initialisation"),
                        Patch(color="tab:red", alpha=0.6, label="end of training")])
  _suptitle(fig, "Activation asymmetry: per-neuron rate gap between classes, pooled over "
            f"{_seeds(df)} seed(s)", setting)
  return io.save_figure(fig, path)


def by_category(df, x, path, metrics=("bg_corr", "bg_signed"), setting=""):
  """Fig. 3(d) / 10: final metric per value of category ``x`` (e.g. the activation); bars are
  means over seeds with ± std error bars, black ticks the initial mean. One row of panels per
  value of the other swept axes."""
  last = final_rows(df)
  first_all = df[df["step"] == 0]
  rows = _group(last, _axes_keys(df, exclude=("seed", x)))
  fig, axes = plt.subplots(len(rows), len(metrics), squeeze=False, layout="constrained",
                           figsize=(3.6 * len(metrics) + 1.8, 2.9 * len(rows) + 0.6))
  for r, (flabel, fvals, sub) in enumerate(rows):
    first = first_all
    for k, v in fvals.items():
      first = first[first[k] == v]
    for ax, m in zip(axes[r], metrics):
      g = sub.groupby(x, sort=False)[m]
      cats = g.mean().index
      init = first.groupby(x, sort=False)[m].mean().reindex(cats)
      ax.bar(np.arange(len(cats)), g.mean().values, yerr=g.std(ddof=0).values, capsize=3,
             color="tab:blue")
      ax.plot(np.arange(len(cats)), init.values, "k_", ms=20, mew=2)
      ax.set_xticks(np.arange(len(cats)), [str(k) for k in cats], rotation=20, fontsize=8)
      ax.set_xlabel(x, fontsize=8)
      ax.set_ylabel(_wrapped(metric_label(m)), fontsize=8)
      ax.set_title(metric_label(m).split(":")[0] + (f"\n{flabel}" if flabel else ""), fontsize=9)
      ax.tick_params(labelsize=7)
  _outside_legend(fig, [Patch(color="tab:blue", label="end of training (mean)"),
                        Line2D([], [], color="k", marker="|", ls="",
                               label=f"error bar: ± std over {_seeds(df)} seeds"),
                        Line2D([], [], color="k", marker="_", ms=12, mew=2, ls="",
                               label="initialisation (mean)")])
  _suptitle(fig, f"Final metrics by {x}, {_seeds(df)} seed(s)", setting)
  return io.save_figure(fig, path)


def versus(df, x, path, metrics=("id_risk", "ood_risk"), loss=None, setting="",
           xlabel=None):
  """Final risk against a numeric swept field ``x`` (e.g. the shift strength s): means over
  seeds with ± std error bars; first metric solid, second dashed; one colour per variant."""
  last = final_rows(df)
  keys = _axes_keys(df, exclude=("seed", x))
  facet, colour = _split(last, keys)
  rows = _group(last, facet)
  fig, axes = plt.subplots(len(rows), 1, figsize=(8.0, 3.4 * len(rows) + 0.8), squeeze=False,
                           layout="constrained")
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  handles = []
  markers = "osD^vP"
  for r, (flabel, _, fsub) in enumerate(rows):
    ax = axes[r, 0]
    groups = _group(fsub, colour)
    for v, (label, _, sub) in enumerate(groups):
      c = colours[v % len(colours)]
      mk = markers[v % len(markers)]
      if r == 0:
        handles.append(Line2D([], [], color=c, marker=mk, mfc="none", label=label or "all"))
      for j, m in enumerate(metrics):
        g = sub.groupby(x)[m]
        # open markers of a size that decreases with the variant, so that a variant drawn
        # over another one leaves it visible
        ax.errorbar(g.mean().index, g.mean().values, yerr=g.std(ddof=0).values, marker=mk,
                    ms=7 - 1.5 * (v % 3), mfc="none", capsize=2, color=c,
                    ls="-" if j == 0 else "--", lw=1.2)
    lines = [sub.groupby(x)[m].mean().values for _, _, sub in groups for m in metrics]
    names = [f"{label or 'all'} {metric_label(m, loss).split(' (')[0]}"
             for label, _, _ in groups for m in metrics]
    note = coincide_note(lines, names).replace("curves", "lines")
    ax.set_title(_with_note(flabel, note, 75).strip("\n"), fontsize=9)
    ax.set_xlabel(xlabel or x, fontsize=8)
    risks = all(m.endswith("_risk") for m in metrics)
    ax.set_ylabel(metric_label("risk", loss) if risks else
                  " / ".join(metric_label(m, loss) for m in metrics), fontsize=8)
  styles = [Line2D([], [], color="k", ls="-" if j == 0 else "--",
                   label=metric_label(m, loss).split(" (")[0]) for j, m in enumerate(metrics)]
  styles.append(Line2D([], [], color="k", marker="|", ls="",
                       label=f"error bar: ± std over {_seeds(df)} seeds"))
  _outside_legend(fig, handles + styles, title=", ".join(colour) or None)
  _suptitle(fig, f"Final risk against {xlabel or x}, {_seeds(df)} seed(s)", setting)
  return io.save_figure(fig, path)


def _layers(df):
  """The hidden layers with per-layer measurements in ``df`` (1..L)."""
  return sorted(int(c[len("ood_move_l"):]) for c in df.columns if c.startswith("ood_move_l"))


def _last_layer(df):
  """``df`` with ``ood_move_last`` and ``sens_ratio_last``: the last hidden layer's OOD movement
  and background/core sensitivity ratio of each row (docs/theory.md, "Per-layer measurements")."""
  move, ratio = np.full(len(df), np.nan), np.full(len(df), np.nan)
  for l in _layers(df):  # deeper layers overwrite where the row's network has them
    m = df[f"ood_move_l{l}"].to_numpy(float)
    r = (df[f"sens_bg_l{l}"] / df[f"sens_core_l{l}"]).to_numpy(float)
    has = np.isfinite(m)
    move[has], ratio[has] = m[has], r[has]
  return df.assign(ood_move_last=move, sens_ratio_last=ratio)


class _PlainLog(matplotlib.ticker.LogFormatter):
  """Matplotlib's choice of labelled log ticks, written as plain numbers (0.02, 0.6, 1)."""

  def __call__(self, x, pos=None):
    return f"{x:g}" if super().__call__(x, pos) else ""


def _log_axis(ax):
  """A logarithmic y axis with plain tick labels."""
  ax.set_yscale("log")
  for axis_set in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
    axis_set(_PlainLog(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
  ax.tick_params(which="both", labelsize=7)


def final_versus(df, x, path, panels, loss=None, setting="", xlabel=None):
  """Final metrics against a numeric swept field ``x`` (the depth L, the spurious correlation
  rho), one panel per metric: means over seeds with ± std error bars at the end of training
  (solid) and the mean at initialisation (dotted), one colour per value of the other swept
  axes."""
  last = final_rows(df)
  first = df[df["step"] == 0]
  colour = _axes_keys(df, exclude=("seed", x))
  ncols = min(len(panels), 3)
  nrows = math.ceil(len(panels) / ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.7 * ncols + 2.2, 3.0 * nrows + 0.7),
                           squeeze=False, layout="constrained")
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  handles = []
  for v, (label, vals, sub) in enumerate(_group(last, colour)):
    c = colours[v % len(colours)]
    handles.append(Line2D([], [], color=c, marker="o", label=label or "all"))
    init = first
    for k, val in vals.items():
      init = init[init[k] == val]
    for ax, m in zip(axes.ravel(), panels):
      g = sub.groupby(x)[m]
      ax.errorbar(g.mean().index, g.mean().values, yerr=g.std(ddof=0).values, marker="o",
                  capsize=2, color=c, ms=4)
      gi = init.groupby(x)[m].mean()
      if np.isfinite(gi.values).any():
        ax.plot(gi.index, gi.values, ":", color=c, lw=1)
  for ax, m in zip(axes.ravel(), panels):
    ax.set_xlabel(xlabel or x, fontsize=8)
    ax.set_ylabel(metric_label(m, loss), fontsize=8)
    ax.set_title(metric_label(m, loss).split(":")[0].split(" (")[0], fontsize=9)
    ax.tick_params(labelsize=7)
    if m.startswith("sens_ratio"):
      _log_axis(ax)
    if np.issubdtype(last[x].dtype, np.integer):
      ax.set_xticks(sorted(last[x].unique()))
  for ax in axes.ravel()[len(panels):]:
    ax.set_visible(False)
  _outside_legend(fig, handles + [
      Line2D([], [], color="k", marker="o", label="end of training (mean)"),
      Line2D([], [], color="k", marker="|", ls="", label="error bar: ± std over seeds"),
      Line2D([], [], color="k", ls=":", label="initialisation (mean)")],
                  title=", ".join(colour) or None)
  _suptitle(fig, f"Final metrics against {xlabel or x}, {_seeds(df)} seed(s)", setting)
  return io.save_figure(fig, path)


def layer_profile(df, path, setting=""):
  """Per-layer measurements at the end of training against the layer index l: the background
  to core sensitivity ratio and the OOD movement of ``h_l``; one row of panels per activation
  (or other swept axis but depth), one colour per depth; means over seeds, ± std error bars."""
  last, layers = final_rows(df), _layers(df)
  rows = _group(last, _axes_keys(df, exclude=("seed", "depth")))
  fig, axes = plt.subplots(len(rows), 2, figsize=(9.6, 3.0 * len(rows) + 0.7), squeeze=False,
                           layout="constrained")
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  depths = sorted(last["depth"].unique()) if "depth" in last else [None]
  for r, (flabel, _, fsub) in enumerate(rows):
    for v, depth in enumerate(depths):
      sub = fsub if depth is None else fsub[fsub["depth"] == depth]
      ls = [l for l in layers if sub[f"ood_move_l{l}"].notna().any()]
      ratio = np.stack([sub[f"sens_bg_l{l}"] / sub[f"sens_core_l{l}"] for l in ls], 1)
      move = np.stack([sub[f"ood_move_l{l}"] for l in ls], 1)
      for ax, vals in zip(axes[r], (ratio, move)):
        ax.errorbar(ls, vals.mean(0), yerr=vals.std(0), marker="o", capsize=2, ms=4,
                    color=colours[v % len(colours)])
    for ax, key in zip(axes[r], ("sens_ratio", "ood_move")):
      ax.set_xlabel("hidden layer l", fontsize=8)
      ax.set_ylabel(metric_label(key), fontsize=8)
      ax.set_title(metric_label(key).split(" (")[0] + (f"\n{flabel}" if flabel else ""), fontsize=9)
      ax.set_xticks(layers)
      ax.tick_params(labelsize=7)
    _log_axis(axes[r][0])
  handles = [Line2D([], [], color=colours[v % len(colours)], marker="o",
                    label=f"L = {d}" if d is not None else "all") for v, d in enumerate(depths)]
  handles.append(Line2D([], [], color="k", marker="|", ls="", label="error bar: ± std over seeds"))
  _outside_legend(fig, handles, title="depth")
  _suptitle(fig, f"Per-layer measurements at the end of training, mean over {_seeds(df)} "
            "seed(s)", setting)
  return io.save_figure(fig, path)


def sweep_figures(df, all_metrics, expanded, workdir):
  """All figures that fit the sweep's axes; returns their paths."""
  config = expanded[0][1] if expanded else None
  loss = None
  if config is not None and "loss" not in df.attrs.get("swept", []):
    loss = config.get("train", {}).get("loss", default_config().train.loss)
  setting = setting_of(config, df.attrs.get("swept", [])) if config is not None else ""
  paths = [curves(df, os.path.join(workdir, "curves.png"), loss=loss, setting=setting)]
  if "act_rate_pos" in all_metrics[0]:
    paths.append(asymmetry(all_metrics, expanded, df, os.path.join(workdir, "asymmetry.png"),
                           setting=setting))
  swept = df.attrs.get("swept", [])
  if "activation" in swept and df["activation"].nunique() > 1:
    paths.append(by_category(df, "activation", os.path.join(workdir, "by_activation.png"),
                             setting=setting))
  layered = any(c.startswith("ood_move_l") for c in df.columns)
  dfl = _last_layer(df) if layered else df
  if "depth" in swept and df["depth"].nunique() > 1:
    panels = ["id_risk", "ood_risk", "bg_signed"] + ["ood_move_last", "sens_ratio_last"] * layered
    paths.append(final_versus(dfl, "depth", os.path.join(workdir, "by_depth.png"), panels,
                              loss=loss, setting=setting, xlabel="hidden layers L"))
    if layered:
      paths.append(layer_profile(df, os.path.join(workdir, "layers.png"), setting=setting))
  if "bg_label_corr" in swept and df["bg_label_corr"].nunique() > 1:
    panels = ["id_risk", "ood_risk", "ood_error"] + [
        m for m in ("sp_align", "bg_signed_clean") if m in df.columns] + ["ood_move_last"] * layered
    paths.append(final_versus(dfl, "bg_label_corr", os.path.join(workdir, "by_bg_label_corr.png"),
                              panels, loss=loss, setting=setting, xlabel="spurious correlation ρ"))
  if "shift" in swept and df["shift"].nunique() > 1:
    paths.append(versus(df, "shift", os.path.join(workdir, "ood_vs_shift.png"), loss=loss,
                        setting=setting, xlabel="shift strength s"))
  return paths
