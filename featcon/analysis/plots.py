"""Matplotlib figures of the analyses (PNG, Agg backend). Each function writes one file.

Plots of numbers label both axes and keep their legends outside the data; image grids label
each row and say what the images are in a title.
"""
import re
import textwrap
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from featcon import io  # pylint: disable=g-import-not-at-top,wrong-import-position


# One colour per encoder role, the same in every figure (and as in the Figure 1 scatter of
# featcon.probe.metrics.scatter_plot) (a label's role is its name without a
# "_s<seed>" suffix or a " (<layer>)" note: "student_s1 (layer1)" is a student).
ROLE_COLOURS = {
    "teacher": "tab:blue", "student": "tab:orange", "random": "tab:brown",
    "supervised": "tab:purple", "control": "tab:olive", "padded": "tab:red",
    "rn": "tab:cyan", "vit": "tab:pink",
}
_SPARE_COLOURS = ("tab:green", "tab:gray", "darkblue", "darkred", "darkgreen", "gold")


def encoder_role(label):
  """``"student_s1 (layer1)"`` → ``"student"``; ``"teacher"`` → ``"teacher"``."""
  base = str(label).split(" (")[0]
  return re.sub(r"_s\d+$", "", base)


def encoder_colour(label):
  """The fixed colour of an encoder label's role (:data:`ROLE_COLOURS`); a role not listed gets
  a spare colour chosen from its name, so it too is the same in every figure."""
  role = encoder_role(label)
  if role in ROLE_COLOURS:
    return ROLE_COLOURS[role]
  return _SPARE_COLOURS[zlib.crc32(role.encode()) % len(_SPARE_COLOURS)]


_SEED_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "ooo", "+++", "---")


def _seed(label):
  """``"student_s2 (layer1)"`` → 2; a label without ``_s<seed>`` → None."""
  m = re.search(r"_s(\d+)$", str(label).split(" (")[0])
  return int(m.group(1)) if m else None


def encoder_hatch(label):
  """The bar hatch of an encoder label's seed (``"student_s2"`` → the third pattern; no seed:
  none), so the seeds of one role, which share its colour, stay apart in a legend."""
  seed = _seed(label)
  return "" if seed is None else _SEED_HATCHES[seed % len(_SEED_HATCHES)]


def encoder_order(labels):
  """``labels`` in the order of :data:`ROLE_COLOURS`' roles (then other roles by name), each
  role's seeds in ascending order: the same legend order in every figure."""
  roles = list(ROLE_COLOURS)

  def key(label):
    role, seed = encoder_role(label), _seed(label)
    return (roles.index(role) if role in roles else len(roles), role,
            -1 if seed is None else seed, str(label))
  return sorted(labels, key=key)


def _normalise(img):
  img = np.asarray(img, np.float32)
  lo, hi = img.min(), img.max()
  return (img - lo) / (hi - lo + 1e-12)


def _legend_outside(fig, ax, title=None):
  """A figure legend right of the panels (nothing when ``ax`` holds a single series)."""
  handles, labels = ax.get_legend_handles_labels()
  if len(handles) > 1:
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title=title,
               title_fontsize=8, frameon=False)


def filters(kernels, path, max_filters=16,
            title="First-layer filters (RGB, each scaled to [0, 1])"):
  """One row per model of its first-layer RGB filters (kh, kw, 3, F), each scaled to [0, 1]."""
  names = list(kernels)
  f = min(max_filters, min(np.asarray(k).shape[-1] for k in kernels.values()))
  label_in = 0.9 + 0.065 * max(len(l) for n in names for l in str(n).split("\n"))
  fig, axes = plt.subplots(len(names), f, figsize=(f * 0.7 + label_in, len(names) * 0.85 + 0.5),
                           squeeze=False)
  for i, n in enumerate(names):
    k = np.asarray(kernels[n])
    for j in range(f):
      ax = axes[i, j]
      ax.imshow(_normalise(k[..., j]), interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
    axes[i, 0].set_ylabel(n, rotation=0, ha="right", fontsize=8)
  fig.suptitle(title, fontsize=10)
  return io.save_figure(fig, path)


def image_grid(rows, path, cmap=None, title="Example inputs, one row per test family"):
  """Rows of images: {row name: (n, H, W[, 3])}."""
  names = list(rows)
  n = max(np.asarray(v).shape[0] for v in rows.values())
  label_in = 0.9 + 0.065 * max(len(l) for nm in names for l in str(nm).split("\n"))
  fig, axes = plt.subplots(len(names), n, figsize=(n * 1.1 + label_in, len(names) * 1.2 + 0.5),
                           squeeze=False)
  for i, name in enumerate(names):
    imgs = np.asarray(rows[name])
    for j in range(n):
      ax = axes[i, j]
      ax.set_xticks([])
      ax.set_yticks([])
      if j < imgs.shape[0]:
        ax.imshow(np.clip(imgs[j], 0, 1), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", fontsize=8)
  fig.suptitle(title, fontsize=10)
  return io.save_figure(fig, path)


HIST_COLUMNS = 4  # panels per row of :func:`histograms`; more wrap onto further rows


def histograms(panels, path, bins=20, range_=None, xlabel="", ylabel="density (per unit)",
               title="", legend_title=None, colour_by_encoder=True):
  """One panel per key of `panels` = {panel: {series: values}} (in their order, wrapped onto
  rows of :data:`HIST_COLUMNS`), overlaid density histograms; series named by encoder label
  get the encoder's fixed colour (:func:`encoder_colour`)."""
  names = list(panels)
  cols = min(len(names), HIST_COLUMNS)
  nrows = -(-len(names) // cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(max(3.4 * cols + 2.4, 7.5), 3.0 * nrows + 0.6),
                           squeeze=False, layout="constrained")
  for ax, p in zip(axes.ravel(), names):
    for s, v in panels[p].items():
      v = np.asarray(v).ravel()
      # outlines, not filled bars: overlapping series neither hide nor blend into a colour that
      # belongs to another encoder
      ax.hist(v, bins=bins, range=range_, histtype="step", lw=1.6, label=s, density=True,
              color=encoder_colour(s) if colour_by_encoder else None)
    ax.set_title(p, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
  for ax in axes.ravel()[len(names):]:
    ax.set_visible(False)
  _legend_outside(fig, axes[0, 0], legend_title)
  if title:
    fig.suptitle(title, fontsize=10)
  return io.save_figure(fig, path)


# Inches of bars in one row of :func:`grouped_bars`: with the legend and labels the figure stays
# under ~2000 px wide at io.FIGURE_DPI; more groups wrap onto further rows.
BARS_ROW_INCHES = 16.0


def grouped_bars(values, path, ylabel="", xlabel="", title="", note="", legend_title=None,
                 keep_together=None):
  """values = {group: {series: number}}: grouped bar chart (Figure 5 style), the groups wrapped
  onto rows of at most ``BARS_ROW_INCHES`` of bars (same y axis); ``note`` is printed under the
  axes (e.g. how the values are normalised). ``keep_together(group)`` (optional) names the unit
  a row break may not split (e.g. a layer, whose groups are its domains); by default the
  groups' first word."""
  groups = list(values)
  series = encoder_order({s for g in values.values() for s in g})
  per_group = 0.5 * max(1, len(series))
  per_row = max(1, int(BARS_ROW_INCHES // per_group))
  unit = keep_together or (lambda g: str(g).split(" ")[0])
  rows = [[]]
  for u in dict.fromkeys(map(unit, groups)):  # whole units per row while they fit
    members = [g for g in groups if unit(g) == u]
    if rows[-1] and len(rows[-1]) + len(members) > per_row:
      rows.append([])
    rows[-1].extend(members)
  rows = [r[i:i + per_row] for r in rows for i in range(0, max(len(r), 1), per_row)]
  w = 0.8 / max(len(series), 1)
  fig, axes = plt.subplots(len(rows), 1, squeeze=False, sharey=True, layout="constrained",
                           figsize=(max(4.5, per_group * len(rows[0])) + 2.0, 3.8 * len(rows)))
  for ax, row in zip(axes[:, 0], rows):
    x = np.arange(len(row))
    for i, s in enumerate(series):
      ax.bar(x + i * w, [values[g].get(s, np.nan) for g in row], w, label=s,
             color=encoder_colour(s), hatch=encoder_hatch(s), edgecolor="white", linewidth=0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x + w * (len(series) - 1) / 2)
    ax.set_xticklabels(row, fontsize=8, rotation=30, ha="right")
    if len(rows) > 1:  # equal bar widths on every row
      ax.set_xlim(-0.5, per_row - 0.5 + w * (len(series) - 1))
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="y", labelsize=8, labelleft=True)
  _legend_outside(fig, axes[0, 0], legend_title)
  if title and len(rows) == 1:
    axes[0, 0].set_title(title, fontsize=10)
  elif title:
    fig.suptitle(title, fontsize=10)
  if note:
    fig.get_layout_engine().set(h_pad=0.1)
    fig.supxlabel("\n".join(textwrap.wrap(note, int(16 * fig.get_figwidth()))), fontsize=7,
                  style="italic")
  return io.save_figure(fig, path)


def scatter_2d(panels, path, xlabel="principal component 1", ylabel="principal component 2",
               title="", legend_title=None):
  """panels = {title: (points (n, 2), groups (n,), group names)}: PCA pictures (Figure 14)."""
  names = list(panels)
  fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names) + 1.6, 3.4), squeeze=False,
                           layout="constrained")
  for ax, t in zip(axes[0], names):
    pts, grp, gnames = panels[t]
    pts, grp = np.asarray(pts), np.asarray(grp)
    for g, gname in enumerate(gnames):
      sel = grp == g
      ax.scatter(pts[sel, 0], pts[sel, 1], s=5, alpha=0.6, label=gname)
    ax.set_title(t, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
  _legend_outside(fig, axes[0, 0], legend_title)
  if title:
    fig.suptitle(title, fontsize=10)
  return io.save_figure(fig, path)


CAM_CMAP = "jet"  # every Grad-CAM figure: the same colour map


def cam_grid(images, cams, path, title="Grad-CAM heatmaps over the inputs"):
  """images = {row: (n, H, W, 3)}, cams = {row: (n, H, W)}: heatmaps over the inputs, with a
  colour bar of the CAM value (each map scaled to [0, 1])."""
  names = list(images)
  n = max(np.asarray(v).shape[0] for v in images.values())
  fig, axes = plt.subplots(len(names), n, figsize=(n * 1.1 + 2.2, len(names) * 1.2 + 0.6),
                           squeeze=False, layout="constrained")
  mappable = None
  for i, name in enumerate(names):
    img, cam = np.asarray(images[name]), np.asarray(cams[name])
    for j in range(n):
      ax = axes[i, j]
      ax.set_xticks([])
      ax.set_yticks([])
      if j < img.shape[0]:
        ax.imshow(_normalise(img[j]) if img.shape[-1] == 3 else img[j], interpolation="nearest")
        mappable = ax.imshow(cam[j], cmap=CAM_CMAP, alpha=0.45, vmin=0, vmax=1,
                             interpolation="bilinear")
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", fontsize=7)
  fig.suptitle(title, fontsize=10)
  if mappable is not None:  # one bar for every panel, along the top edge of the grid
    bar = fig.colorbar(mappable, ax=axes, location="top", shrink=0.5, aspect=40, pad=0.01)
    bar.set_label(f"Grad-CAM value (each map scaled to [0, 1]; colour map {CAM_CMAP})",
                  fontsize=7)
    bar.ax.tick_params(labelsize=7)
  return io.save_figure(fig, path)
