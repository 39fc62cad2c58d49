"""benchmarks/accelerator.py in its reduced CPU mode: every part runs and both outputs agree."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

# The CLIP part compares against open_clip (the script imports it as tests/clip does).
for _m in ("torch", "open_clip"):
  if importlib.util.find_spec(_m) is None:
    pytest.skip(f"needs {_m} (pip install -e '.[clip-test]')", allow_module_level=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_reduced_run_writes_json_and_markdown(tmp_path):
  out = tmp_path / "acc"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  p = subprocess.run([sys.executable, "-m", "benchmarks.accelerator", f"--out={out}", "--reduced",
                      "--parts=peak,theory,clip,distill"], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-3000:]
  res = json.loads((out / "accelerator.json").read_text())
  md = (out / "accelerator.md").read_text()
  assert res["reduced"] and res["platform"] == "cpu"
  assert res["peak"]["peak_bf16_flops"] > 0 and res["peak"]["peak_f32_flops"] > 0
  assert set(res["theory"]) == {"fig8", "online", "online_4096"}
  for name, w in res["theory"].items():
    assert w["configs"] == {"fig8": 4, "online": 8, "online_4096": 8}[name]
    assert w["config_steps_per_s"] > 0 and 0 < w["fraction_of_f32_peak"]
    assert f"| {name} | {w['configs']} × {w['steps']} |" in md
  torch_rows = {(r["workload"], r["coords"]): r for r in res["theory_torch"]}
  assert set(torch_rows) == {(w, c) for w in ("fig8", "online") for c in ("input", "feature")}
  for (w, c), r in torch_rows.items():
    assert r["configs"] == {"fig8": 4, "online": 8}[w] and r["device"] == "cpu"
    assert r["config_steps_per_s"] > 0 and 0 < r["fraction_of_f32_peak"]
    assert r["featcon_over_torch"] > 0
    assert f"| {w} | {c} | {r['configs']} × {r['steps']} | cpu |" in md
  assert [(r["model"], r["dtype"]) for r in res["clip"]] == [
      (m, d) for m in ("tiny-rn", "tiny-vit") for d in ("float32", "bfloat16")]
  assert all(r["featcon_images_per_s"] > 0 and r["open_clip_images_per_s"] > 0
             for r in res["clip"])
  assert res["distill"]["images_per_s"] > 0
  assert "Distillation step (tiny-rn, batch 8)" in md


def test_unknown_part_is_refused(tmp_path):
  p = subprocess.run([sys.executable, "-m", "benchmarks.accelerator", f"--out={tmp_path}",
                      "--reduced", "--parts=peak,warp"], cwd=ROOT, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode != 0 and "'warp'" in p.stderr and "allowed" in p.stderr
