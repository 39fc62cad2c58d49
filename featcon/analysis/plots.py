"""Matplotlib figures of the analyses (PNG, Agg backend). Each function writes one file."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from featcon import io  # pylint: disable=g-import-not-at-top,wrong-import-position


def _normalise(img):
  img = np.asarray(img, np.float32)
  lo, hi = img.min(), img.max()
  return (img - lo) / (hi - lo + 1e-12)


def filters(kernels, path, max_filters=16):
  """One row per model of its first-layer RGB filters (kh, kw, 3, F), each scaled to [0, 1]."""
  names = list(kernels)
  f = min(max_filters, min(np.asarray(k).shape[-1] for k in kernels.values()))
  fig, axes = plt.subplots(len(names), f, figsize=(f * 0.7, len(names) * 0.85), squeeze=False)
  for i, n in enumerate(names):
    k = np.asarray(kernels[n])
    for j in range(f):
      ax = axes[i, j]
      ax.imshow(_normalise(k[..., j]), interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
    axes[i, 0].set_ylabel(n, rotation=0, ha="right", fontsize=8)
  return io.save_figure(fig, path)


def image_grid(rows, path, cmap=None):
  """Rows of images: {row name: (n, H, W[, 3])}."""
  names = list(rows)
  n = max(np.asarray(v).shape[0] for v in rows.values())
  fig, axes = plt.subplots(len(names), n, figsize=(n * 1.1, len(names) * 1.2), squeeze=False)
  for i, name in enumerate(names):
    imgs = np.asarray(rows[name])
    for j in range(n):
      ax = axes[i, j]
      ax.set_xticks([])
      ax.set_yticks([])
      if j < imgs.shape[0]:
        ax.imshow(np.clip(imgs[j], 0, 1), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", fontsize=8)
  return io.save_figure(fig, path)


def histograms(panels, path, bins=20, range_=None, xlabel=""):
  """One panel per key of `panels` = {panel: {series: values}}, overlaid histograms."""
  names = list(panels)
  fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.6), squeeze=False)
  for ax, p in zip(axes[0], names):
    for s, v in panels[p].items():
      v = np.asarray(v).ravel()
      ax.hist(v, bins=bins, range=range_, alpha=0.5, label=s, density=True)
    ax.set_title(p, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
  axes[0, 0].legend(fontsize=7)
  return io.save_figure(fig, path)


def grouped_bars(values, path, ylabel=""):
  """values = {group: {series: number}}: grouped bar chart (Figure 5 style)."""
  groups = list(values)
  series = sorted({s for g in values.values() for s in g})
  x = np.arange(len(groups))
  w = 0.8 / max(len(series), 1)
  fig, ax = plt.subplots(figsize=(max(3.0, 1.2 * len(groups) * max(1, len(series)) * 0.5), 2.8))
  for i, s in enumerate(series):
    ax.bar(x + i * w, [values[g].get(s, np.nan) for g in groups], w, label=s)
  ax.set_xticks(x + w * (len(series) - 1) / 2)
  ax.set_xticklabels(groups, fontsize=7, rotation=30, ha="right")
  ax.set_ylabel(ylabel, fontsize=8)
  ax.legend(fontsize=7)
  return io.save_figure(fig, path)


def scatter_2d(panels, path):
  """panels = {title: (points (n, 2), groups (n,), group names)}: PCA pictures (Figure 14)."""
  names = list(panels)
  fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
  for ax, t in zip(axes[0], names):
    pts, grp, gnames = panels[t]
    pts, grp = np.asarray(pts), np.asarray(grp)
    for g, gname in enumerate(gnames):
      sel = grp == g
      ax.scatter(pts[sel, 0], pts[sel, 1], s=5, alpha=0.6, label=gname)
    ax.set_title(t, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0, 0].legend(fontsize=7)
  return io.save_figure(fig, path)


def cam_grid(images, cams, path):
  """images = {row: (n, H, W, 3)}, cams = {row: (n, H, W)}: heatmaps over the inputs."""
  names = list(images)
  n = max(np.asarray(v).shape[0] for v in images.values())
  fig, axes = plt.subplots(len(names), n, figsize=(n * 1.1, len(names) * 1.2), squeeze=False)
  for i, name in enumerate(names):
    img, cam = np.asarray(images[name]), np.asarray(cams[name])
    for j in range(n):
      ax = axes[i, j]
      ax.set_xticks([])
      ax.set_yticks([])
      if j < img.shape[0]:
        ax.imshow(_normalise(img[j]) if img.shape[-1] == 3 else img[j], interpolation="nearest")
        ax.imshow(cam[j], cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", fontsize=7)
  return io.save_figure(fig, path)
