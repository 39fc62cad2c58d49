"""Every figure the library saves is readable on its own: labelled axes, a title, a legend
outside the data (or a single series), images with labelled rows; no swept variant dropped.

``featcon.io.save_figure`` is wrapped to inspect each Figure before it is written and closed.
"""
import numpy as np
import pandas as pd
import pytest

from featcon import io
from featcon.probe import metrics as probe_metrics
from featcon.theory import plots as theory_plots


def _series(ax):
  """Data series drawn in ``ax``: lines, bar containers, scatter collections (not bands)."""
  lines = [l for l in ax.get_lines() if len(l.get_xdata())]
  scatters = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
  return len(lines) + len(ax.containers) + len(scatters)


MAX_WIDTH_PX = 2000  # docs/figures.md: a page holds ~2000 px at the figures' dpi
MAX_EMPTY_Y = 0.45   # more of the y range above or below every data point: the axis misfits


def _y_data(ax):
  """Every y value drawn as data in ``ax``: line vertices, bar tops and bottoms, scatter
  offsets and histogram bars."""
  ys = [np.asarray(l.get_ydata(), float) for l in ax.get_lines() if len(l.get_xdata())]
  for patch in ax.patches:
    if type(patch).__name__ == "Rectangle":
      y0, h = patch.get_y(), patch.get_height()
      ys.append(np.asarray([y0, y0 + h], float))
  for c in ax.collections:
    if type(c).__name__ == "PathCollection":
      ys.append(np.asarray(c.get_offsets(), float).reshape(-1, 2)[:, 1])
  ys = [y[np.isfinite(y)] for y in ys]
  return np.concatenate(ys) if ys and any(y.size for y in ys) else np.zeros(0)


def _unused_y_fraction(ax):
  """The larger of the fractions of the y axis above the highest and below the lowest data value
  (0 for an axis without data)."""
  y = _y_data(ax)
  if not y.size:
    return 0.0
  lo, hi = ax.get_ylim()
  span = abs(hi - lo) or 1.0
  top, bottom = (hi - y.max()) / span, (y.min() - lo) / span
  return float(max(top, bottom) if hi > lo else max(-top, -bottom))


def check_figure(fig):
  """Problems of a figure as a list of strings (empty when it is readable on its own)."""
  fig.canvas.draw()
  bad = []
  axes = [a for a in fig.axes if a.get_visible() and a.get_label() != "<colorbar>"]
  image_axes = [a for a in axes if a.get_images()]
  data_axes = [a for a in axes if not a.get_images()]
  sup = fig._suptitle  # pylint: disable=protected-access
  suptitle = sup.get_text() if sup is not None else ""
  for a in data_axes:
    if not a.get_xlabel().strip() or not a.get_ylabel().strip():
      bad.append(f"axes {a.get_title()!r}: x label {a.get_xlabel()!r}, y label {a.get_ylabel()!r}")
    if not (a.get_title().strip() or suptitle.strip()):
      bad.append("axes without a title and no figure title")
    if a.get_legend() is not None:
      bad.append(f"axes {a.get_title()!r}: legend inside the axes")
  if data_axes and not fig.legends and max(_series(a) for a in data_axes) > 1:
    bad.append("several series and no legend")
  for leg in fig.legends:
    box = leg.get_window_extent()
    for a in data_axes:
      if box.overlaps(a.get_window_extent()):
        bad.append(f"legend overlaps the axes {a.get_title()!r}")
  width_px = fig.get_figwidth() * io.FIGURE_DPI
  if width_px > MAX_WIDTH_PX:
    bad.append(f"{width_px:.0f} px wide at {io.FIGURE_DPI} dpi (at most {MAX_WIDTH_PX})")
  for a in data_axes:
    fit = _unused_y_fraction(a)
    if fit > MAX_EMPTY_Y:
      bad.append(f"axes {a.get_title()!r}: {fit:.0%} of the y axis holds no data")
  if image_axes:
    if not suptitle.strip():
      bad.append("image grid without a title")
    rows = {}
    for a in image_axes:
      rows.setdefault(round(a.get_position().y0, 3), []).append(a)
    for y, row in rows.items():
      if not any(a.get_ylabel().strip() for a in row):
        bad.append(f"image row at y={y} without a label")
  return bad


@pytest.fixture
def saved(monkeypatch):
  """{file name: (problems, figure facts)} of every figure saved while the test runs."""
  out = {}
  real = io.save_figure

  def wrapper(fig, path, *args, **kwargs):
    axes = [a for a in fig.axes if a.get_visible() and a.get_label() != "<colorbar>"]
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    out[path.replace("\\", "/").split("/")[-1]] = (check_figure(fig), {
        "axes": len(axes), "legend": labels,
        "titles": [a.get_title() for a in axes]})
    return real(fig, path, *args, **kwargs)

  monkeypatch.setattr(io, "save_figure", wrapper)
  return out


def _assert_readable(saved, expected):
  assert set(expected) <= set(saved), sorted(saved)
  problems = {k: v[0] for k, v in saved.items() if v[0]}
  assert not problems, problems


@pytest.mark.slow
def test_smoke_sweep_figures(tmp_path, saved):
  from configs import theory  # pylint: disable=g-import-not-at-top
  from featcon.theory import sweeps  # pylint: disable=g-import-not-at-top
  cfg = theory.get_config("smoke")
  cfg.train.steps = 40
  sweeps.run(cfg, workdir=str(tmp_path), log=lambda s: None)
  _assert_readable(saved, ["curves.png", "asymmetry.png", "by_activation.png"])
  # by_activation: one row of panels per width (2 widths x 2 metrics), not a mean over widths.
  assert saved["by_activation.png"][1]["axes"] == 4
  assert saved["asymmetry.png"][1]["axes"] == 4  # every (activation, width) variant
  legend = " ".join(saved["curves.png"][1]["legend"])
  assert "min–max over 2 seed(s)" in legend and "ID" in legend and "OOD" in legend


@pytest.mark.slow
def test_smoke_analysis_figures(tmp_path, saved):
  from configs import analyze as analyze_config  # pylint: disable=g-import-not-at-top
  from featcon.analysis import experiment  # pylint: disable=g-import-not-at-top
  experiment.run(analyze_config.get_config("smoke"), str(tmp_path))
  _assert_readable(saved, ["activation_rates.png", "selectivity.png", "density.png",
                           "domain.png", "gradcam.png", "padding_filters.png",
                           "padding_inputs.png"])


def _frame(widths=(64, 256, 1024), batches=(8, 32, 128), shifts=(0.0,), seeds=(0, 1)):
  rows, metrics = [], []
  rng = np.random.default_rng(0)
  for w in widths:
    for b in batches:
      for s in shifts:
        for seed in seeds:
          cid = len(metrics)
          metrics.append({"act_rate_pos": rng.uniform(size=(2, w)),
                          "act_rate_neg": rng.uniform(size=(2, w))})
          for step in (0, 10):
            rows.append({"config_id": cid, "width": w, "batch_size": b, "shift": s,
                         "seed": seed, "step": step,
                         **{k: rng.uniform() for k in ("id_risk", "ood_risk", "core_corr",
                                                       "bg_corr", "bg_signed")}})
  df = pd.DataFrame(rows)
  df.attrs["swept"] = ["width", "batch_size"] + (["shift"] if len(shifts) > 1 else []) + ["seed"]
  return df, metrics


def test_many_variants_are_faceted_and_none_dropped(tmp_path, saved):
  df, metrics = _frame()
  theory_plots.curves(df, str(tmp_path / "curves.png"), loss="hinge")
  theory_plots.asymmetry(metrics, None, df, str(tmp_path / "asymmetry.png"))
  _assert_readable(saved, ["curves.png", "asymmetry.png"])
  facts = saved["curves.png"][1]
  assert facts["axes"] == 3 * 4  # one row per width, four metric panels
  assert sum("batch_size=" in t for t in facts["legend"]) == 3  # colours: the batch sizes
  assert saved["asymmetry.png"][1]["axes"] == 9  # all nine variants, none dropped


def test_versus_and_scatter_figures(tmp_path, saved):
  df, _ = _frame(widths=(64, 256), batches=(8,), shifts=(0.0, 0.5, 1.0))
  theory_plots.versus(df, "shift", str(tmp_path / "ood_vs_shift.png"), loss="hinge",
                      xlabel="shift strength s")
  pts = [{"id": 0.9, "ood": 0.6, "label": "a", "group": "baseline"},
         {"id": 0.8, "ood": 0.5, "label": "b", "group": "baseline"},
         {"id": 0.95, "ood": 0.7, "label": "t", "group": "teacher"}]
  probe_metrics.scatter_plot(pts, (1.0, -0.5), str(tmp_path / "scatter.png"), title="t")
  _assert_readable(saved, ["ood_vs_shift.png", "scatter.png"])
  assert (tmp_path / "ood_vs_shift.png").stat().st_size > 0


def test_coinciding_curves_are_named_on_the_figure():
  same = [np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.005])]
  assert theory_plots.coincide_note(same, ["B=8", "B=32"]) == (
      "all 2 curves coincide (largest gap 0.005)")
  apart = [np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.5, 1.0])]
  assert theory_plots.coincide_note(apart, ["a", "b"]) == ""
  three = same + [np.array([0.0, 0.5, 1.0])]
  assert theory_plots.coincide_note(three, ["a", "b", "c"]) == "coincide: a = b"
  assert theory_plots.coincide_note(same[:1], ["a"]) == ""


def test_curves_figure_says_when_variants_coincide(tmp_path, saved):
  df, _ = _frame(widths=(64,), batches=(8, 32))
  df.loc[df["batch_size"] == 32, ["id_risk", "ood_risk", "core_corr", "bg_corr", "bg_signed"]] = (
      df.loc[df["batch_size"] == 8, ["id_risk", "ood_risk", "core_corr", "bg_corr",
                                     "bg_signed"]].to_numpy())
  texts = []
  real = io.save_figure

  def grab(fig, path, *a, **k):
    texts.append(fig._suptitle.get_text())  # pylint: disable=protected-access
    texts.extend(ax.get_title() for ax in fig.axes)
    return real(fig, path, *a, **k)

  io.save_figure = grab
  try:
    theory_plots.curves(df, str(tmp_path / "curves.png"), loss="hinge")
  finally:
    io.save_figure = real
  # every panel's variants coincide: the figure's title says so once, no panel repeats it
  assert "The 2 batch_size variants coincide in every panel" in texts[0].replace("\n", " "), texts
  assert not any("coincide" in t for t in texts[1:]), texts


def test_checker_rejects_an_unreadable_figure():
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots()
  ax.plot([0, 1], [0, 1], label="a")
  ax.plot([0, 1], [1, 0], label="b")
  ax.legend()
  problems = check_figure(fig)
  plt.close(fig)
  assert any("x label" in p for p in problems) and any("inside" in p for p in problems)
  fig, ax = plt.subplots(figsize=(25, 3))  # too wide, and a y axis four times the data
  ax.bar([0, 1], [10, 12])
  ax.set_ylim(0, 50)
  ax.set(xlabel="x", ylabel="y", title="t")
  problems = check_figure(fig)
  plt.close(fig)
  assert any("px wide" in p for p in problems) and any("holds no data" in p for p in problems)
