"""distil (tiny) -> analyse teacher vs student vs random on the digits benchmark."""
import json

import jax
import numpy as np
import pytest

for _m in ("sklearn", "skimage", "PIL"):
  pytest.importorskip(_m)
from configs import analyze as analyze_config  # pylint: disable=g-import-not-at-top
from configs.distill import digits  # pylint: disable=g-import-not-at-top
from featcon.analysis import encoders  # pylint: disable=g-import-not-at-top
from featcon.analysis import experiment  # pylint: disable=g-import-not-at-top
from featcon import distill  # pylint: disable=g-import-not-at-top

FILES = ["activation_rates", "selectivity", "density", "domain", "gradcam", "analyses"]


@pytest.mark.slow
def test_distill_then_analyze_teacher_student_random(tmp_path):
  wd = str(tmp_path / "distill")
  dcfg = digits.get_config("tiny-rn,smoke")  # teacher pre-trained 6 steps, student distilled 6
  student = distill.distill(dcfg, wd)
  cfg = analyze_config.get_config("digits")
  with cfg.unlocked():
    cfg.encoders = (f"teacher=tiny-rn@{wd}/teacher,student=tiny-rn@{wd}/student/checkpoints,"
                    "random=random:tiny-rn")
    cfg.data.n_per_domain = 24
    cfg.cam_examples = 3
    cfg.batch_size = 16
  res = experiment.run(cfg, str(tmp_path / "an"))
  out = tmp_path / "an" / "encoders"
  for f in FILES:
    json.loads((out / f"{f}.json").read_text())
    if f != "analyses":
      assert (out / f"{f}.png").stat().st_size > 1000
  enc = res["encoders"]
  assert set(enc["encoders"]) == {"teacher", "student", "random"}
  assert enc["layers"]["teacher"] == ["stem", "layer1", "layer2", "layer3", "layer4"]
  assert set(enc["selectivity"]["layer4"]["student"]) == {"ID (grey backgrounds)",
                                                         "OOD (colour photos)"}
  assert enc["gradcam"]["teacher"]["layer"] == "layer2"
  assert {"mass_on_object.ID", "mass_on_object.OOD"} <= set(enc["gradcam"]["student"])
  assert enc["density"]["teacher"]["layer"] == "layer1"
  # The student analysed is the one distillation returned; the teacher loses its linear head.
  s = encoders.load("s", f"tiny-rn@{wd}/student", (32, 32, 3))
  for a, b in zip(jax.tree.leaves(student), jax.tree.leaves(s.variables), strict=True):
    np.testing.assert_array_equal(a, b)
  t = encoders.load("teacher", f"tiny-rn@{wd}", (32, 32, 3))
  assert set(t.variables) == {"params", "batch_stats"} and "head" not in t.variables["params"]
  with pytest.raises(ValueError, match="does not match the arch"):
    encoders.load("t", f"tiny-vit@{wd}/teacher", (32, 32, 3))
