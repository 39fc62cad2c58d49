"""The RGB path of the padded-image experiment (F.4): padding + resize, filter measure, end to end."""
import json

import numpy as np
import pytest

from configs import analyze as analyze_config
from featcon.analysis import padding
from featcon.analysis.padding import experiment as padding_experiment


def _triangle_weights(n_out, n_in):
  """Antialiased linear resize n_in → n_out as a matrix, written out by hand: output pixel i
  samples input coordinate c_i = (i + ½)·n_in/n_out − ½ with the triangle max(0, 1 − |j − c_i|·s),
  s = n_out/n_in, renormalised over the input pixels j."""
  s = n_out / n_in
  c = (np.arange(n_out) + 0.5) / s - 0.5
  w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - c[:, None]) * s)
  return w / w.sum(1, keepdims=True)


def test_render_rgb_pads_then_resizes_back():
  h, p = 32, 8                                    # the paper's CIFAR-10 geometry
  a, b = np.array([0.1, 0.7, 0.3]), np.array([150, 50, 50]) / 255.0
  flat = np.broadcast_to(a, (1, h, h, 3)).astype(np.float32)
  out = np.asarray(padding.render_rgb(flat, b[None].astype(np.float32), p))
  assert out.shape == (1, h, h, 3)
  # 48 → 32 px: output pixels 0–4 (and 27–31) see only the border, 6–25 only the image.
  for i in (0, 4, 27, 31):
    np.testing.assert_allclose(out[0, i, 16], b, atol=1e-6)
    np.testing.assert_allclose(out[0, 16, i], b, atol=1e-6)
  np.testing.assert_allclose(out[0, 6:26, 6:26], np.broadcast_to(a, (20, 20, 3)), atol=1e-6)
  t = (out[0, 5, 16] - a) / (b - a)               # a mixed pixel lies on the segment a–b
  assert np.allclose(t, t[0], atol=1e-5) and 0.05 < t[0] < 0.95
  # A random image against the hand-written resize of the hand-padded canvas.
  img = np.random.default_rng(0).random((2, h, h, 3)).astype(np.float32)
  cols = np.array([[0.6, 0.2, 0.2], [0.0, 0.0, 1.0]], np.float32)
  canvas = np.broadcast_to(cols[:, None, None, :], (2, h + 2 * p, h + 2 * p, 3)).copy()
  canvas[:, p:p + h, p:p + h] = img
  w = _triangle_weights(h, h + 2 * p)
  want = np.einsum("ij,njkc,lk->nilc", w, canvas, w)
  np.testing.assert_allclose(padding.render_rgb(img, cols, p), want, atol=1e-5)
  np.testing.assert_array_equal(padding.render_rgb(img, cols, 0), img)
  # The experiment's RGB inputs: uint8 content / 255, padded; 'none' leaves it unpadded.
  u8 = (img * 255).astype(np.uint8)
  data = padding.PaddingData("rgb", "t", u8, np.zeros(2, np.int32), u8, np.zeros(2, np.int32),
                             10, h, p)
  np.testing.assert_allclose(data.mean_rgb, u8.mean((0, 1, 2)) / 255.0, rtol=1e-6)
  np.testing.assert_allclose(data.inputs(u8, cols), padding.render_rgb(u8 / 255.0, cols, p),
                             atol=1e-6)
  np.testing.assert_allclose(data.inputs(u8, cols, plain=True), u8 / 255.0, atol=1e-7)
  with pytest.raises(ValueError, match="pad=-1"):
    padding.render_rgb(img, cols, -1)


def test_filter_pad_stats_closed_form():
  m = np.array([0.5, 0.5, 0.5])
  c = m + [0.3, 0.0, -0.4]                          # c − m has norm 0.5
  u, v = np.array([0.6, 0.0, -0.8]), np.array([0.8, 0.0, 0.6])   # u = (c − m)/‖c − m‖, v ⊥ u
  k = np.zeros((3, 3, 3, 3), np.float32)
  k[..., 0] = 2 * u / 3                  # twice e_u, the unit uniform patch of colour u
  k[..., 1] = v / 3                      # e_v: a uniform patch orthogonal to the padding direction
  k[0, 0, :, 2], k[2, 2, :, 2] = u, -u   # colour u, but zero-sum in space: no uniform response
  s = padding.filter_pad_stats(k, c, m)
  # s_f = Σ_taps w_f: (6u, 3v, 0) → |s_fᵀu| = (6, 0, 0); ‖w_f‖² = (4, 1, 2).
  assert s["pad_response"] == pytest.approx(2.0, rel=1e-5)
  assert s["pad_share"] == pytest.approx(4 / 7, rel=1e-5)
  assert s["colour_share"] == pytest.approx(5 / 7, rel=1e-5)
  assert s["pad_colour_share"] == pytest.approx(36 / 45, rel=1e-5)
  assert s["norm"] == pytest.approx((2 + 1 + np.sqrt(2)) / 3, rel=1e-5)
  only_u = padding.filter_pad_stats(k[..., :1] / 2, c * 255, m * 255)   # units do not matter
  assert only_u["pad_response"] == pytest.approx(3.0, rel=1e-5)   # √(k_h k_w)
  assert only_u["pad_share"] == pytest.approx(1.0, rel=1e-5)
  ortho = padding.filter_pad_stats(k[..., 1:], c, m)
  assert ortho["pad_response"] == pytest.approx(0.0, abs=1e-6)
  assert ortho["pad_share"] == pytest.approx(0.0, abs=1e-7)
  # Isotropic random filters: 1/27, 1/9 and 1/3 in expectation.
  rnd = np.random.default_rng(0).standard_normal((3, 3, 3, 20000)).astype(np.float32)
  r = padding.filter_pad_stats(rnd, c, m)
  assert r["pad_share"] == pytest.approx(1 / 27, rel=0.05)
  assert r["colour_share"] == pytest.approx(1 / 9, rel=0.05)
  assert r["pad_colour_share"] == pytest.approx(1 / 3, rel=0.05)
  with pytest.raises(ValueError, match="must differ from the data's mean colour"):
    padding.filter_pad_stats(k, m, m)
  with pytest.raises(ValueError, match="kernel.shape"):
    padding.filter_pad_stats(np.ones((3, 3, 1, 4)), c, m)


def test_families_and_config_errors():
  centre, jittered = padding.parse_family("mean", [0.2, 0.3, 0.4])
  np.testing.assert_allclose(centre, [0.2, 0.3, 0.4])
  assert not jittered
  assert padding.parse_family("none") == (None, False)
  with pytest.raises(ValueError, match="needs the data's mean colour"):
    padding.parse_family("mean")
  glyphs = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
  data = padding.PaddingData("digits", "digits", glyphs, np.zeros(2, np.int32), glyphs,
                             np.zeros(2, np.int32), 10, 12, 2)
  np.testing.assert_allclose(data.mean_rgb, [glyphs.mean()] * 3, rtol=1e-6)
  plain = np.asarray(data.inputs(glyphs, None, plain=True))       # 'none': no border at all
  np.testing.assert_allclose(plain, padding.render(glyphs, np.zeros((2, 3), np.float32), 12, 0))

  def bad(match, **fields):
    cfg = analyze_config.padding_config()
    cfg.update(fields)
    with pytest.raises(ValueError, match=match):
      padding.check_config(cfg)
  bad(r"padding.source='cifar100': allowed 'digits' or .*cifar10", source="cifar100")
  bad(r"padding.source='cifar10_red'", source="cifar10_red")     # already padded
  bad(r"padding.train_conditions item 'purple': allowed \[.*'mean', 'none'\]",
      train_conditions=("black", "purple"))
  bad(r"padding.measure_family='black': allowed", measure_family="black")
  bad(r"padding.schedule='linear': allowed", schedule="linear")
  bad(r"padding.pad=8: allowed 0..7", pad=8)
  bad(r"padding.n_train=-1", n_train=-1)


def test_cifar10_not_prepared_names_the_build_command(tmp_path):
  from featcon.data import DatasetNotPreparedError  # pylint: disable=g-import-not-at-top
  cfg = analyze_config.padding_config()
  cfg.update(source="cifar10", data_dir=str(tmp_path), size=32, pad=8)
  with pytest.raises(DatasetNotPreparedError, match="tfds build cifar10 --file_format=array_record"):
    padding.load_data(cfg)


@pytest.mark.slow
def test_rgb_path_end_to_end_on_mock_cifar10(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  from featcon.analysis import experiment  # pylint: disable=g-import-not-at-top
  from featcon.data import load  # pylint: disable=g-import-not-at-top
  cfg = analyze_config.get_config("padding_cifar10")
  with cfg.unlocked():
    cfg.padding.update(widths=(4,), blocks=1, steps=3, batch_size=8, n_test=12, seeds=(0,),
                       train_conditions=("mean", "red_fixed"), test_families=("red", "mean", "none"),
                       probe_digits=3, probe_colours=2, eval_batch_size=8)
  with tfds.testing.mock_data(num_examples=30):
    res = experiment.run(cfg, str(tmp_path))
    train = load("cifar10", "train").source
    train_mean = np.mean([train[i]["image"].reshape(-1, 3).mean(0) for i in range(len(train))],
                         0) / 255.0
  out = json.loads((tmp_path / "padding" / "padding.json").read_text())
  assert out["data"]["source"] == "cifar10" and out["data"]["kind"] == "rgb"
  assert out["data"]["n_train"] == 27 and out["data"]["n_test"] == 12   # 10 % carved off as val
  np.testing.assert_allclose(out["data"]["mean_rgb"], train_mean, rtol=1e-5)
  summary = res["padding"]
  assert summary == out["summary"] and set(summary) == {"mean", "red_fixed"}
  for cond in summary.values():
    assert {"filter.pad_response", "filter.pad_share", "colour_var_frac_pre_logits",
            "accuracy.none"} <= set(cond)
    assert all(0.0 <= cond[f"accuracy.{f}"][0] <= 1.0 for f in ("red", "mean", "none"))
    assert 0.0 <= cond["colour_var_frac_stem"][0] <= 1.0
  # Seed 0 starts from the same init in both conditions; training moves the filters.
  init = {c: {k: v for k, v in s.items() if k.startswith("init_filter.")} for c, s in summary.items()}
  assert init["mean"] == init["red_fixed"]
  assert summary["red_fixed"]["filter.norm"] != summary["red_fixed"]["init_filter.norm"]
  for png in ("padding_filters.png", "padding_inputs.png"):
    assert (tmp_path / "padding" / png).stat().st_size > 0


def test_batched_passes_one_shape_and_keeps_order():
  shapes = []

  def fn(a, b):
    shapes.append(a.shape)
    return a * 2, b.sum(-1)
  a, b = np.arange(11.0), np.arange(22.0).reshape(11, 2)
  two_a, b_sum = padding_experiment._batched(fn, 11, 4, a, b)  # pylint: disable=protected-access
  np.testing.assert_array_equal(two_a, 2 * a)
  np.testing.assert_array_equal(b_sum, b.sum(-1))
  assert set(shapes) == {(4,)} and len(shapes) == 3
  assert padding_experiment._batched(fn, 11, 64, a, b)[0].shape == (11,)  # pylint: disable=protected-access
