"""The Table 1 experiment's definitions (featcon/analysis/table1.py) on hand-made results: shift
groups, the standard-model line and effective robustness, the fair test, uninformative sets,
the fit to the teacher; and its config errors, raised before any work."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("PIL")
from configs.distill import real_experiment  # pylint: disable=g-import-not-at-top
from featcon.analysis import table1  # pylint: disable=g-import-not-at-top


def _logit(p):
  return np.log(p / (1 - p))


def test_shift_groups_follow_the_teachers_fine_tuning_data():
  c = real_experiment.get_config("full")
  g = table1.shift_groups(c)
  assert g["fmnist_grass:test"] == "id"
  assert g["fmnist_textures:test"] == g["fmnist_photos:test"] == "covered"
  for k in ("gaussian_noise", "defocus_blur", "contrast", "fog"):
    assert g[f"fmnist_c_{k}:s3"] == g[f"fmnist_c_{k}:s5"] == "covered"
  for k in ("impulse_noise", "jpeg_compression", "pixelate", "frost", "brightness"):
    assert g[f"fmnist_c_{k}:s5"] == "held_out"
  assert len(g) == 21
  c.teacher.data = "fmnist_grass:train"  # a teacher that saw grass only: backgrounds held out
  c.teacher.finetune.corruptions = "fog"
  g = table1.shift_groups(c)
  assert g["fmnist_photos:test"] == g["fmnist_c_contrast:s3"] == "held_out"
  assert g["fmnist_c_fog:s3"] == "covered"


@pytest.mark.parametrize("field,value,match", [
    ("rows", "imagenet,oracle", r"experiment.rows entries \['oracle'\] are not allowed"),
    ("ablations", "bigger", r"experiment.ablations entries \['bigger'\] are not allowed"),
    ("seeds", "", r"experiment.seeds='' is not allowed; allowed: at least one seed"),
    ("seeds", "0,x", r"experiment.seeds='0,x' is not allowed"),
    ("line_steps", "0,10", r"experiment.line_steps='0,10' is not allowed"),
    ("fair_gap", 0.0, r"experiment.fair_gap=0.0 is not allowed; allowed: 0 < value < 1"),
    ("swap_backgrounds", "sky", r"swap_backgrounds entries \['sky'\] are not allowed"),
    ("analyses", "rates,tsne", r"experiment.analyses entries \['tsne'\] are not allowed"),
    ("second_teacher", "tiny-rn", r"second_teacher='tiny-rn' is not allowed; allowed: "
                                  r"efficientnet-lite0"),
])
def test_bad_experiment_fields_name_field_value_and_allowed(field, value, match):
  c = real_experiment.get_config("full")
  c.experiment[field] = value
  with pytest.raises(ValueError, match=match):
    table1.check_config(c)


def test_the_experiment_needs_a_fine_tuned_teacher():
  c = real_experiment.get_config("ci")
  c.teacher.source = "checkpoint"
  with pytest.raises(ValueError, match=r"teacher.source='checkpoint' is not allowed for the "
                                       r"Table 1 experiment; allowed: finetune"):
    table1.check_config(c)


def _res(model, id_acc, shifts, probe="ridge", **extra):
  row = {"model": model, "probe": probe, "id": id_acc, "ood": float(np.mean(list(shifts.values()))),
         "per_set": dict(shifts, **{"fmnist_grass:test": id_acc})}
  return dict({"rows": [row], "probed": model, "config": {}}, **extra)


def _config():
  c = real_experiment.get_config("ci")
  c.data.eval_sets = ("fmnist_grass:test:id,fmnist_photos:test:ood,"
                      "fmnist_c_fog:s3:ood,fmnist_c_jpeg_compression:s3:ood")
  c.teacher.finetune.corruptions = "fog"
  c.experiment.seeds = "0,1"
  c.probe.primary = "ridge"  # the probe of the hand-made rows
  return c


def test_summary_groups_line_effective_robustness_and_fair_test():
  c = _config()
  P, F, J = "fmnist_photos:test", "fmnist_c_fog:s3", "fmnist_c_jpeg_compression:s3"
  def sets(p, f, j, i=None):
    return {P: p, F: f, J: j} if i is None else {P: p, F: f, J: j, "fmnist_grass:test": i}
  results = {
      "teacher": dict(_res("teacher", 0.8, sets(0.6, 0.5, 0.12)), baseline=[
          {"label": "px1", "id": 0.5, "ood": 0.2, "per_set": sets(0.2, 0.3, 0.1, 0.5)},
          {"label": "px2", "id": 0.7, "ood": 0.3, "per_set": sets(0.25, 0.45, 0.2, 0.7)}]),
      "student/s0": _res("student", 0.79, sets(0.3, 0.2, 0.11),
                         swap={"photos": {"ratio": 0.5}},
                         fit_to_teacher={"mse": 1.0, "mse_of_teacher_mean": 2.0, "r2": 0.5}),
      "student/s1": _res("student", 0.74, sets(0.3, 0.2, 0.09),
                         swap={"photos": {"ratio": 0.7}}),
  }
  s = table1.summarize(c, results)
  t, st = s["rows"]["teacher"], s["rows"]["student"]
  assert st["seeds"] == ["s0", "s1"] and st["swap"] == {"photos": [0.5, 0.7]}
  np.testing.assert_allclose(t["covered"], [(0.6 + 0.5) / 2])  # photos and fog: covered
  np.testing.assert_allclose(t["held_out"], [0.12])            # jpeg: held out
  # Two standard models: the line passes through both (logit space), hand-computed.
  a = (_logit(0.3) - _logit(0.2)) / (_logit(0.7) - _logit(0.5))
  b = _logit(0.2) - a * _logit(0.5)
  np.testing.assert_allclose(s["fits"]["ood"], [a, b], rtol=1e-9)
  er = t["ood"][0] - 1 / (1 + np.exp(-(a * _logit(0.8) + b)))
  np.testing.assert_allclose(t["effective_robustness"], [er], rtol=1e-9)
  ah = (_logit(0.2) - _logit(0.1)) / (_logit(0.7) - _logit(0.5))
  bh = _logit(0.1) - ah * _logit(0.5)
  np.testing.assert_allclose(t["effective_robustness_held_out"],
                             [0.12 - 1 / (1 + np.exp(-(ah * _logit(0.8) + bh)))], rtol=1e-9)
  assert s["line_equation"] == f"logit(OOD) = {a:.3f} logit(ID) {b:+.3f}"
  # jpeg: every row within 0.03 of chance (0.1) -> uninformative; the others are not.
  assert s["uninformative_sets"] == [J]
  f = s["fair_test"]
  assert not f["fair"] and "student s1 ID 0.740 vs teacher 0.800 (gap -0.060 > 0.03)" in \
      f["reason"] and "s0" not in f["reason"]
  md = table1.markdown(s)
  assert "NOT FAIR" in md and f"| {J} (uninformative) | held_out |" in md
  # The caption: the ID set, the OOD sets in their groups, the probe, the seeds, the ER formula.
  assert md.startswith(f"ID: fmnist_grass:test. OOD (all shifts): the mean over 3 sets; "
                       f"covered (its background kind or corruption is in the teacher's "
                       f"fine-tuning data): {P}, {F}; held out: {J}.\nProbe: ridge (")
  assert "Seeds: the `seeds` column (1 or 2 per row)" in md
  assert "ER = OOD - sigmoid(a logit(ID) + b)" in md
  s["config"] = {"data": {"probe_train": "fmnist_grass:train", "probe_val": "fmnist_grass:val"},
                 "probe": {"representation": "layer3"}, "experiment": {"seeds": "0,1"}}
  assert ("frozen `layer3` features, trained on fmnist_grass:train and selected on "
          "fmnist_grass:val") in table1.markdown(s)
  assert "(experiment seeds 0,1; 1 or 2 per row)" in table1.markdown(s)
  assert "| student | 1 | 1.000 ± 0.000 | 2.000 ± 0.000 | 0.500 ± 0.000 |" in md


def test_fair_test_passes_within_the_gap():
  rows = {"teacher": {"id": [0.72]}, "student": {"seeds": ["s0", "s1"], "id": [0.70, 0.745]}}
  f = table1.fair_test(rows, 0.03)
  assert f["fair"] and f["teacher_id"] == 0.72
  np.testing.assert_allclose(list(f["student_minus_teacher"].values()), [-0.02, 0.025])
  assert not table1.fair_test({"teacher": {"id": [0.7]}}, 0.03)["fair"]


def test_fit_stats_against_sklearn_r2():
  from sklearn.metrics import r2_score  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  t = rng.normal(size=(50, 4)) * [1, 2, 3, 4]
  s = t + rng.normal(size=t.shape) * 0.5
  f = table1.fit_stats(t, s)
  np.testing.assert_allclose(f["r2"], r2_score(t, s, multioutput="variance_weighted"))
  np.testing.assert_allclose(f["mse"], np.mean((s - t) ** 2))
  np.testing.assert_allclose(f["mse_of_teacher_mean"], np.mean(t.var(axis=0)))
  assert table1.fit_stats(t, t.mean(0) + 0 * t)["r2"] == pytest.approx(0.0, abs=1e-12)


def test_docs_summary_md_is_the_markdown_of_its_summary_json():
  """docs/results/real_experiment/summary.md is what markdown() writes for the summary.json
  beside it (the experiment's own print-out, caption included)."""
  d = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
      __file__)))), "docs", "results", "real_experiment")
  with open(os.path.join(d, "summary.json")) as f:
    summary = json.load(f)
  with open(os.path.join(d, "summary.md")) as f:
    assert f.read() == table1.markdown(summary) + "\n"
