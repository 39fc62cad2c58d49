"""distil -> probe -> evaluate through the CLI entry points into a temporary workdir."""
import json
import os
import subprocess
import sys

import pytest

# Needs the "data" extras (pip install -e ".[test,data]"); skipped without them.
for _m in ("tensorflow_datasets", "sklearn", "skimage", "PIL"):
  pytest.importorskip(_m)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGES = ("experiments.distill", "experiments.linear_probe", "experiments.evaluate")

# Runs one absl entry point inside tfds.testing.mock_data (random images for every TFDS set).
_MOCKED = r"""
import sys
from absl import app
import importlib

import tensorflow_datasets as tfds
mod = importlib.import_module(sys.argv[1])
with tfds.testing.mock_data(num_examples=48):
  try:
    app.run(mod.main, argv=sys.argv[1:])
  except SystemExit as e:
    if e.code not in (0, None):
      raise
"""


def _run(args, mocked=False):
  cmd = [sys.executable, "-c", _MOCKED] if mocked else [sys.executable, "-m"]
  r = subprocess.run(cmd + args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                     env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert r.returncode == 0, f"{args}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
  return r


def _check_results(workdir, models=("teacher", "student")):
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  assert {r["model"] for r in res["rows"]} == set(models)
  assert {r["probe"] for r in res["rows"]} == {"adamw", "ridge"}
  for r in res["rows"]:
    assert 0 <= r["id"] <= 1 and 0 <= r["ood"] <= 1 and "effective_robustness" in r
  assert len(res["baseline_fit"]) == 2 and "jax" in res["versions"]
  assert os.path.getsize(os.path.join(workdir, "scatter.png")) > 1000
  # results.md: the caption (sets, seed, probes, the formula with the fit used), then the table.
  with open(os.path.join(workdir, "results.md")) as f:
    md = f.read()
  assert md == res["caption"] + "\n\n" + res["table_md"] + "\n"
  ids = [s.rsplit(":", 1)[0] for s in res["eval_sets"] if s.endswith(":id")]
  assert md.startswith(f"ID: {', '.join(ids)}. OOD: ") and "Seeds: 1 (seed 0;" in md
  a, b = res["baseline_fit"]
  assert f"(a, b) = ({a:.4f}, {b:+.4f}) from {len(res['baseline'])} baseline models" in md
  for stage in ("distill", "linear_probe", "evaluate"):
    with open(os.path.join(workdir, f"{stage}_config.json")) as f:
      assert "versions" in json.load(f)
  return res


@pytest.mark.slow
def test_digits_benchmark_cli(tmp_path):
  wd = str(tmp_path / "run")
  for stage in STAGES:
    _run([stage, "--config=configs/distill/digits.py:tiny-rn,smoke", f"--workdir={wd}"])
  res = _check_results(wd)
  assert res["eval_sets"] == ["digits_grey:test:id", "digits_colour:test:ood"]
  # The teacher was pre-trained (supervised on all backgrounds) and the student distilled.
  for stage in ("teacher", "student"):
    with open(os.path.join(wd, stage, "metrics.jsonl")) as f:
      assert json.loads(f.readlines()[-1])["step"] == 6


@pytest.mark.slow
def test_tfds_mock_cli(tmp_path):
  wd = str(tmp_path / "run")
  for stage in STAGES:
    _run([stage, "--config=configs/distill/cifar10_red.py:tiny-rn,smoke", f"--workdir={wd}",
          "--config.teacher.source=random", "--config.data.augment=crop_flip"], mocked=True)
  res = _check_results(wd)
  assert res["eval_sets"] == ["cifar10:test:id", "cifar10_red:test:ood"]


def test_bad_config_value_names_the_field(tmp_path):
  with pytest.raises(AssertionError, match=r"config.data.eval_sets.*'nope' is unknown"):
    _run([STAGES[2], "--config=configs/distill/digits.py:tiny-rn,smoke",
          f"--workdir={tmp_path}", "--config.data.eval_sets=nope:test:ood"])
