"""featcon.analysis.replot: figures redrawn from the JSON saved beside them draw exactly the saved
numbers, and files that are not such results are refused with their name."""
import json
import os
import shutil

import numpy as np
import pytest

from featcon import io
from featcon.analysis import replot

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANALYSES = os.path.join(ROOT, "docs", "results", "real_analyses", "analyses.json")
REAL = os.path.join(ROOT, "docs", "results", "real_experiment")


@pytest.fixture
def figures(monkeypatch):
  """Every figure saved while the test runs: (path, [bar heights], [scatter points])."""
  out = []
  real = io.save_figure

  def grab(fig, path, *a, **k):
    bars = [p.get_height() for ax in fig.axes for p in ax.patches]
    pts = [tuple(o) for ax in fig.axes for c in ax.collections
           if type(c).__name__ == "PathCollection" for o in c.get_offsets()]
    out.append((path, bars, pts))
    return real(fig, path, *a, **k)

  monkeypatch.setattr(io, "save_figure", grab)
  return out


def test_selectivity_bars_are_the_saved_numbers(tmp_path, figures):
  keep = ["teacher", "student_s0"]
  path = replot.selectivity_figure_from_json(ANALYSES, str(tmp_path / "s.png"), keep)
  assert os.path.getsize(path) > 0
  sel = json.load(open(ANALYSES))["selectivity"]
  want = sorted(v for by_enc in sel.values() for e in keep for v in by_enc[e].values())
  (_, bars, _), = figures
  np.testing.assert_allclose(sorted(bars), want, rtol=1e-6)


def test_unknown_encoder_and_foreign_file_are_refused(tmp_path):
  with pytest.raises(ValueError, match="'student_s9' is not in"):
    replot.selectivity_figure_from_json(ANALYSES, str(tmp_path / "s.png"), ["student_s9"])
  other = tmp_path / "other.json"
  other.write_text(json.dumps({"rows": []}))
  with pytest.raises(io.CorruptFileError, match="no 'selectivity'"):
    replot.selectivity_figure_from_json(str(other), str(tmp_path / "s.png"))
  os.makedirs(tmp_path / "run")
  (tmp_path / "run" / "summary.json").write_text(json.dumps({"x": 1}))
  with pytest.raises(io.CorruptFileError, match="summary.json of experiments.real_experiment"):
    replot.real_experiment_figures(str(tmp_path / "run"))


def test_figure1_points_are_the_summarys(tmp_path, figures):
  shutil.copy(os.path.join(REAL, "summary.json"), tmp_path / "summary.json")
  paths = replot.real_experiment_figures(str(tmp_path))
  assert [os.path.basename(p) for p in paths] == ["scatter.png", "teacher_heldout.png"]
  summary = json.load(open(tmp_path / "summary.json"))
  logit = lambda p: np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))
  want = sorted((float(logit(i)), float(logit(o))) for r in summary["rows"].values()
                for i, o in zip(r["id"], r["ood"]))
  want += [(float(logit(p["id"])), float(logit(p["ood"]))) for p in summary["baseline"]]
  got = sorted(figures[0][2])
  np.testing.assert_allclose(np.asarray(got), np.asarray(sorted(want)), rtol=1e-6)


def test_selectivity_bars_from_a_real_experiment_summary(tmp_path, figures):
  """The experiment's analyses keep their selectivity only as headline rows
  (``"selectivity, <domain> | <layer>"``): every bar is one of them, seeds told apart by hatch."""
  path = os.path.join(REAL, "summary.json")
  replot.selectivity_figure_from_json(path, str(tmp_path / "s.png"))
  head = json.load(open(path))["analyses"]["headline"]
  want = sorted(v for row in head.values() for k, v in row.items()
                if k.startswith("selectivity, "))
  (_, bars, _), = figures
  assert len(want) > 20
  np.testing.assert_allclose(sorted(bars), want, rtol=1e-6)
  assert {"student_s0", "student_s1", "student_s2", "teacher"} <= set(head)


def test_seeds_of_a_role_differ_by_hatch_and_legends_follow_the_roles():
  from featcon.analysis import plots  # pylint: disable=import-outside-toplevel
  assert plots.encoder_colour("student_s0") == plots.encoder_colour("student_s2")
  hatches = [plots.encoder_hatch(f"student_s{s}") for s in range(3)]
  assert len(set(hatches)) == 3 and plots.encoder_hatch("teacher") == ""
  assert plots.encoder_order(["supervised_s0", "student_s1", "imagenet", "teacher",
                              "student_s0", "random_s0"]) == [
      "teacher", "student_s0", "student_s1", "random_s0", "supervised_s0", "imagenet"]
