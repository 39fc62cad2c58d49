"""Figures of the paper's numerical experiments (Figures 3(d), 7, 8, 9, 10) from sweep results."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from featcon import io  # noqa: E402


def _variants(df, exclude=("seed",)):
  keys = [c for c in df.attrs.get("swept", []) if c not in exclude and c in df.columns]
  if not keys:
    return [("all", df)]
  out = []
  for vals, sub in df.groupby(keys, sort=False):
    vals = vals if isinstance(vals, tuple) else (vals,)
    out.append((", ".join(f"{k}={v}" for k, v in zip(keys, vals)), sub))
  return out


def curves(df, path, panels=(("id_risk", "ood_risk"), ("core_corr",), ("bg_corr",),
                             ("bg_signed",))):
  """Fig. 8 / 9: risks and feature correlations over steps; lines are seed means, bands min-max."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for v, (label, sub) in enumerate(_variants(df)):
    c = colors[v % len(colors)]
    for ax, keys in zip(axes, panels):
      for j, key in enumerate(keys):
        g = sub.groupby("step")[key]
        steps = np.asarray(list(g.groups.keys()))
        mean, lo, hi = g.mean().values, g.min().values, g.max().values
        ls = "-" if j == 0 else "--"
        name = f"{label}" + (f" ({key.split('_')[0].upper()})" if len(keys) > 1 else "")
        ax.plot(steps, mean, ls, color=c, label=name)
        ax.fill_between(steps, lo, hi, color=c, alpha=0.2)
  for ax, keys in zip(axes, panels):
    ax.set_title(" / ".join(keys))
    ax.set_xlabel("step")
  axes[0].legend(fontsize=7)
  return io.save_figure(fig, path)


def asymmetry(all_metrics, expanded, df, path):
  """Fig. 7: histograms of p_r(+1) - p_r(-1) over neurons at initialisation and at the end."""
  variants = _variants(df)[:6]
  fig, axes = plt.subplots(1, len(variants), figsize=(4 * len(variants), 3.2), squeeze=False)
  for ax, (label, sub) in zip(axes[0], variants):
    ids = sorted(set(sub["config_id"]))
    for t, name in ((0, "init"), (-1, "final")):
      gaps = np.concatenate([
          (all_metrics[i]["act_rate_pos"][t] - all_metrics[i]["act_rate_neg"][t]) for i in ids])
      ax.hist(gaps[np.isfinite(gaps)], bins=40, range=(-1, 1), alpha=0.6, label=name)
    ax.set_title(label, fontsize=8)
    ax.set_xlabel("p(+1) - p(-1)")
  axes[0][0].legend()
  return io.save_figure(fig, path)


def by_category(df, x, path, metrics=("bg_corr", "bg_signed")):
  """Fig. 3(d) / 10: final background correlation per activation (or any category)."""
  last = df[df["step"] == df["step"].max()]
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2))
  for ax, m in zip(np.atleast_1d(axes), metrics):
    g = last.groupby(x, sort=False)[m]
    first = df[df["step"] == 0].groupby(x, sort=False)[m].mean()
    ax.bar(np.arange(len(g)), g.mean().values, yerr=g.std(ddof=0).values, label="final")
    ax.plot(np.arange(len(g)), first.reindex(g.mean().index).values, "k_", ms=20, label="init")
    ax.set_xticks(np.arange(len(g)), [str(k) for k in g.mean().index], rotation=20)
    ax.set_title(m)
  np.atleast_1d(axes)[0].legend()
  return io.save_figure(fig, path)


def versus(df, x, path, metrics=("id_risk", "ood_risk")):
  """OOD risk against the shift strength s (or any numeric swept field)."""
  last = df[df["step"] == df["step"].max()]
  fig, ax = plt.subplots(figsize=(4.5, 3.4))
  for label, sub in _variants(last, exclude=("seed", x)):
    for m in metrics:
      g = sub.groupby(x)[m]
      ax.errorbar(g.mean().index, g.mean().values, yerr=g.std(ddof=0).values, marker="o",
                  capsize=2, label=f"{label} {m}")
  ax.set_xlabel(x)
  ax.legend(fontsize=7)
  return io.save_figure(fig, path)


def sweep_figures(df, all_metrics, expanded, workdir):
  """All figures that fit the sweep's axes; returns their paths."""
  paths = [curves(df, os.path.join(workdir, "curves.png"))]
  if "act_rate_pos" in all_metrics[0]:
    paths.append(asymmetry(all_metrics, expanded, df, os.path.join(workdir, "asymmetry.png")))
  swept = df.attrs.get("swept", [])
  if "activation" in swept and df["activation"].nunique() > 1:
    paths.append(by_category(df, "activation", os.path.join(workdir, "by_activation.png")))
  if "shift" in swept and df["shift"].nunique() > 1:
    paths.append(versus(df, "shift", os.path.join(workdir, "ood_vs_shift.png")))
  return paths
