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


def test_checker_rejects_an_unreadable_figure():
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots()
  ax.plot([0, 1], [0, 1], label="a")
  ax.plot([0, 1], [1, 0], label="b")
  ax.legend()
  problems = check_figure(fig)
  plt.close(fig)
  assert any("x label" in p for p in problems) and any("inside" in p for p in problems)
