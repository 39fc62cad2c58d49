"""The benchmark summary over seeds, and the atomic files of the probe stage."""
import json
import os

import numpy as np
import pytest

from featcon.probe import benchmark, linear


def _res(t_id, t_ood, s_id, s_ood):
  rows = []
  for who, (i, o) in (("teacher", (t_id, t_ood)), ("student", (s_id, s_ood))):
    rows.append({"model": who, "probe": "adamw", "id": i, "ood": o, "effective_robustness": o - i})
    rows.append({"model": who, "probe": "ridge", "id": 0.0, "ood": 0.0})
  return {"rows": rows}


def test_summary_mean_and_std_over_seeds(tmp_path):
  results = {"tiny-rn": {0: _res(0.9, 0.5, 0.8, 0.3), 1: _res(0.7, 0.5, 0.6, 0.5)}}
  table = benchmark.write_summary(str(tmp_path), results, {"tiny-rn_s0": 1.0}, "adamw")
  with open(tmp_path / "summary.json") as f:
    summary = json.load(f)
  assert summary["rows"]["tiny-rn/teacher"]["id"] == [0.9, 0.7]
  assert summary["rows"]["tiny-rn/student"]["ood"] == [0.3, 0.5]
  assert summary["seconds"] == {"tiny-rn_s0": 1.0} and "jax" in summary["versions"]
  # teacher: ID 0.8 ± 0.1, OOD 0.5 ± 0, drop 0.3 ± 0.1; student: ER (-0.5, -0.1) -> -0.3 ± 0.2.
  assert "| tiny-rn | teacher | 2 | 0.800 ± 0.100 | 0.500 ± 0.000 | 0.300 ± 0.100 |" in table
  assert "| tiny-rn | student | 2 | 0.700 ± 0.100 | 0.400 ± 0.100 | 0.300 ± 0.200 | " \
         "-0.300 ± 0.200 |" in table
  assert (tmp_path / "summary.md").read_text() == table + "\n"
  assert sorted(os.listdir(tmp_path)) == ["summary.json", "summary.md"]  # no temporary files
  # The ridge rows carry no effective robustness: nan, not an error.
  assert "nan" in benchmark.summarize(results, "ridge")[0]
  with pytest.raises(ValueError, match="probe='sgd'"):
    benchmark.summarize(results, "sgd")


def test_benchmark_runs_through_the_orchestrator_and_reuses_finished_runs(tmp_path,
                                                                          monkeypatch):
  """run_benchmark's loop is featcon.probe.orchestrator's: every (seed, model) once, the summary
  after each, and a rerun under the same config that trains nothing."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  calls = []
  def get_config(model):
    return ml_collections.ConfigDict({"seed": 0, "model": {"teacher": "tiny-rn",
                                                            "student": model}})
  monkeypatch.setattr(benchmark.runs_lib, "start_stage", lambda c, wd, s: None)
  monkeypatch.setattr(benchmark.runs_lib, "validate_config", lambda c, s: None)
  monkeypatch.setattr(benchmark.student, "distill", lambda c, wd: calls.append((c.seed, wd)))
  monkeypatch.setattr(benchmark.stages, "train_probes", lambda c, wd: None)
  monkeypatch.setattr(benchmark.stages, "evaluate",
                      lambda c, wd: _res(0.9, 0.5 + c.seed / 10, 0.8, 0.3))
  table = benchmark.run_benchmark(get_config, str(tmp_path), ["tiny-rn"], [0, 1])
  assert [c[0] for c in calls] == [0, 1]
  assert "| tiny-rn | teacher | 2 | 0.900 ± 0.000 | 0.550 ± 0.050 |" in table
  assert benchmark.run_benchmark(get_config, str(tmp_path), ["tiny-rn"], [0, 1]) == table
  assert len(calls) == 2  # reused: nothing ran again
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["rows"]["tiny-rn/teacher"]["ood"] == [0.5, 0.6]


def test_probe_npz_written_atomically_under_its_name(tmp_path):
  p = linear.LinearProbe(np.eye(2, dtype=np.float32), np.zeros(2, np.float32), "ridge",
                         {"lambda": 0.1})
  p.to_npz(str(tmp_path / "p.npz"))
  assert os.listdir(tmp_path) == ["p.npz"]
  with np.load(tmp_path / "p.npz") as z:
    np.testing.assert_array_equal(z["kernel"], p.kernel)
    assert str(z["kind"]) == "ridge"
