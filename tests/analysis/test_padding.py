"""The padded-image experiment (F.4): colour decomposition, variance shares, rendering, training."""
import jax
import numpy as np
import pytest

from configs import analyze as analyze_config
from featcon.analysis import padding


def test_filter_colour_stats_by_hand():
  grey = np.zeros((1, 1, 3, 1), np.float32)
  grey[0, 0, :, 0] = 1.0                     # on the grey axis: no chroma
  s = padding.filter_colour_stats(grey)
  assert s["chroma_norm"] == pytest.approx(0.0, abs=1e-6)
  assert s["grey_norm"] == pytest.approx(np.sqrt(3))
  assert s["pad_response"] == pytest.approx(0.0, abs=1e-6)
  chroma = np.zeros((1, 1, 3, 1), np.float32)
  chroma[0, 0, :, 0] = [2., -1., -1.]        # the chroma direction of brick red (150, 50, 50)
  s = padding.filter_colour_stats(chroma)
  assert s["chroma_share"] == pytest.approx(1.0)
  assert s["pad_response"] == pytest.approx(np.sqrt(6), rel=1e-5)
  with pytest.raises(ValueError, match="kernel.shape"):
    padding.filter_colour_stats(np.ones((3, 3, 1, 4)))


def test_within_group_variance_fraction():
  digit = np.arange(4.0)[:, None, None] * np.ones((4, 3, 2))   # depends on the digit only
  colour = np.arange(3.0)[None, :, None] * np.ones((4, 3, 2))  # on the colour only
  assert padding.within_group_variance_fraction(digit) == pytest.approx(0.0)
  assert padding.within_group_variance_fraction(colour) == pytest.approx(1.0)
  assert padding.within_group_variance_fraction(digit + colour) == pytest.approx(
      (2 / 3) / (2 / 3 + 5 / 4))


def test_render_and_colours():
  glyphs = np.ones((2, 8, 8), np.float32)
  cols = padding.sample_colours(jax.random.PRNGKey(0), 2, "green_fixed", 0.3)
  np.testing.assert_allclose(cols, [[50 / 255, 150 / 255, 50 / 255]] * 2, rtol=1e-6)
  x = np.asarray(padding.render(glyphs, cols, 12, 2))
  assert x.shape == (2, 12, 12, 3)
  np.testing.assert_allclose(x[0, 0, 0], cols[0], rtol=1e-6)     # border = colour
  np.testing.assert_allclose(x[0, 6, 6], [1., 1., 1.])           # centre = grey digit
  jit = np.asarray(padding.sample_colours(jax.random.PRNGKey(1), 100, "red", 0.1))
  assert np.all(np.abs(jit - np.array([150, 50, 50]) / 255) <= 0.1 + 1e-6)
  with pytest.raises(ValueError, match="colour family='purple'"):
    padding.sample_colours(jax.random.PRNGKey(0), 1, "purple", 0.1)
  with pytest.raises(ValueError, match="pad=6"):
    padding.render(glyphs, cols, 12, 6)


@pytest.mark.slow
def test_tiny_experiment_runs(tmp_path):
  cfg = analyze_config.padding_config()
  cfg.update(steps=5, seeds=(0,), n_test=20, probe_digits=4, probe_colours=2, size=12, pad=2,
             train_conditions=("black", "red"), widths=(4, 8))
  glyphs, labels = padding.synthetic_glyphs(0, 90)
  summary, runs = padding.run_experiment(cfg, str(tmp_path), glyphs, labels)
  assert set(summary) == {"black", "red"} and len(runs) == 2
  # The control's inputs have no chroma, so its stem filters' chroma part gets no gradient.
  b = summary["black"]
  assert b["filter.chroma_norm"][0] == pytest.approx(b["init_filter.chroma_norm"][0], rel=1e-2)
  assert (tmp_path / "padding.json").exists() and (tmp_path / "padding_filters.png").exists()
