"""Every analysis on tiny models and data into a temporary workdir (configs/analyze.py:smoke)."""
import json

import pytest

from configs import analyze as analyze_config
from featcon.analysis import experiment

FILES = ["activation_rates", "selectivity", "density", "domain", "gradcam"]


@pytest.mark.slow
def test_smoke_writes_every_figure_and_number(tmp_path):
  cfg = analyze_config.get_config("smoke")
  res = experiment.run(cfg, str(tmp_path))
  enc_dir = tmp_path / "encoders"
  for f in FILES:
    assert (enc_dir / f"{f}.png").stat().st_size > 0
    json.loads((enc_dir / f"{f}.json").read_text())
  assert (tmp_path / "padding" / "padding.json").exists()
  assert (tmp_path / "config.json").exists()
  labels = set(res["encoders"]["encoders"])
  assert {"rn", "vit"} <= labels
  sel = res["encoders"]["selectivity"]
  # ReLU maps are non-negative, so their selectivity lies in [0, 1].
  for layer in ("layer1", "layer4"):
    for v in sel[layer]["rn"].values():
      assert 0.0 <= v <= 1.0 + 1e-6
  dom = res["encoders"]["domain"]
  assert all(0.0 <= d["error"] <= 1.0 for d in dom.values())


# (fields set on the smoke config, the error it must raise)
BAD_VALUES = [
    ({"run": "encoders,plots"}, "run item 'plots'"),
    ({"encoders": "rn:random:tiny-rn"}, "encoders item"),
    ({"run": "encoders", "representation": "pre_logit"}, "representation='pre_logit'.*allowed"),
    ({"run": "encoders", "layers": "layer9"},
     "layer 'layer9': not an intermediate of encoder 'rn'"),
    ({"run": "encoders", "analyses": "rates,saliency"}, "analyses item 'saliency': allowed"),
]


def test_bad_config_values_raise(tmp_path):
  for i, (fields, match) in enumerate(BAD_VALUES):
    cfg = analyze_config.get_config("smoke")
    with cfg.unlocked():
      for k, v in fields.items():
        cfg[k] = v
    with pytest.raises(ValueError, match=match):
      experiment.run(cfg, str(tmp_path / str(i)))
    # refused before any work: no encoder initialised, no config.json written
    assert not (tmp_path / str(i)).exists(), fields
  with pytest.raises(ValueError, match="config arg='big'"):
    analyze_config.get_config("big")


def test_default_layers_follow_the_contract():
  from featcon.analysis import suite as run  # pylint: disable=g-import-not-at-top
  assert run.default_layers(["layer10", "stem", "layer2", "attnpool", "layer1"]) == [
      "stem", "layer1", "layer2", "layer10"]
  vit = ["block0", "block1_mlp_act", "block0_mlp_act", "block10_mlp_act", "embedding"]
  assert run.default_layers(vit) == ["block0_mlp_act", "block1_mlp_act", "block10_mlp_act"]
  assert run.default_cam_layer(vit) == "block0" and run.default_cam_layer(["layer1", "layer4"]) == "layer4"
