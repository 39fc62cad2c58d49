"""The analysis experiment's plumbing: the analysis table and the printed summary."""
import ml_collections
import pytest

from featcon.analysis import experiment
from featcon.analysis import suite


def test_unknown_analysis_is_refused_before_any_work(tmp_path):
  assert list(suite.ANALYSES) == ["rates", "selectivity", "density", "domain", "gradcam",
                                  "background"]
  cfg = ml_collections.ConfigDict({"analyses": "rates,bogus"})
  with pytest.raises(ValueError, match=r"analyses item 'bogus': allowed \('rates', "):
    suite.run_all(cfg, encs=None, data=None, workdir=str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_summary_text_reports_headline_numbers():
  results = {
      "padding": {"red": {
          "final_loss": [2.25, 0.05],
          "init_filter.chroma_share": [0.7, 0.0], "filter.chroma_share": [0.6, 0.01],
          "accuracy.red": [0.5, 0.1], "accuracy.none": [0.25, 0.0],
          "colour_var_frac_stem": [0.2, 0.0]}},
      "encoders": {
          "encoders": {"rn": "random:tiny-rn"},
          "domain": {"rn": {"error": 0.125, "chance_error": 0.5}}},
  }
  text = experiment.summary_text(results)
  assert "red: final loss 2.250 ± 0.050" in text
  assert "chroma_share 0.700 → 0.600 ± 0.010" in text
  assert "accuracy: red 0.500 ± 0.100, none 0.250" in text
  assert "stem 0.200" in text
  assert "rn:" in text and "domain-probe error 0.125 (chance 0.500)" in text
  assert "activation rate" not in text     # only the analyses that ran
