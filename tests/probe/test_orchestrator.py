"""The run-directory loop of featcon/probe/orchestrator.py: reuse only under the same
fingerprint, rerun otherwise, a deadline that starts nothing new, the summary callback."""
import json
import os
import time

import ml_collections
import numpy as np
import pytest

from featcon.probe import orchestrator


def _job(tmp_path, key="a", lr=0.1, log_every=10, calls=None):
  c = ml_collections.ConfigDict({"lr": lr, "log_every": log_every})
  def run(config, wd):
    calls.append(key)
    return {"value": config.lr * 2}
  return orchestrator.Job(key, str(tmp_path / key), c, run, ignore=("log_every",))


def test_a_finished_job_is_reused_only_under_the_same_fingerprint(tmp_path):
  calls = []
  res, _ = orchestrator.run_jobs([_job(tmp_path, calls=calls)])
  assert res == {"a": {"value": 0.2}} and calls == ["a"]
  orchestrator.run_jobs([_job(tmp_path, log_every=99, calls=calls)])  # an ignored field
  assert calls == ["a"]
  res, _ = orchestrator.run_jobs([_job(tmp_path, lr=0.5, calls=calls)])  # a result field
  assert calls == ["a", "a"] and res["a"]["value"] == 1.0
  with open(tmp_path / "a" / "results.json", "w") as f:
    f.write("{trunc")  # a corrupt result is rerun, not read
  orchestrator.run_jobs([_job(tmp_path, lr=0.5, calls=calls)])
  assert calls == ["a", "a", "a"]
  with open(tmp_path / "a" / "job.json") as f:
    assert json.load(f)["ignore"] == ["log_every"]


def test_summary_after_every_job_and_deadline(tmp_path):
  calls, seen = [], []
  jobs = [_job(tmp_path, k, calls=calls) for k in ("a", "b", "c")]
  orchestrator.run_jobs(jobs[:1])
  res, sec = orchestrator.run_jobs(jobs, lambda r, s: seen.append(sorted(r)),
                                   deadline=time.time() - 1)
  # Past the deadline: the finished job is reused, nothing new starts.
  assert sorted(res) == ["a"] and calls == ["a"] and seen == [["a"]]
  assert sec["a"] == 0.0 and "a:recorded" in sec
  res, _ = orchestrator.run_jobs(jobs, lambda r, s: seen.append(sorted(r)))
  assert seen[1:] == [["a"], ["a", "b"], ["a", "b", "c"]] and calls == ["a", "b", "c"]
  with pytest.raises(ValueError, match=r"job keys \['a'\] are repeated"):
    orchestrator.run_jobs([jobs[0], jobs[0]])


def test_seed_statistics_are_numpy_mean_and_population_std():
  v = [0.71, 0.74, 0.69]
  assert orchestrator.mean_std(v) == f"{np.mean(v):.3f} ± {np.std(v):.3f}" == "0.713 ± 0.021"
  s = orchestrator.seed_stats(v)
  assert s["n"] == 3 and s["min"] == 0.69 and s["max"] == 0.74
  np.testing.assert_allclose(s["std"], np.sqrt(np.mean((np.array(v) - np.mean(v)) ** 2)))
