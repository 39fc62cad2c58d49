"""The border geometry of Appendix F.4 shared by the registry's cifar10_red and the experiment."""
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.data import preprocess


def test_pad_canvas_places_image_inside_a_constant_border():
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (5, 4, 3)).astype(np.uint8)
  colour = np.array([7, 8, 9], np.uint8)
  out = preprocess.pad_canvas(img, colour, 2)
  assert out.shape == (9, 8, 3) and out.dtype == np.uint8
  want = np.empty((9, 8, 3), np.uint8)
  want[...] = colour
  want[2:7, 2:6] = img
  np.testing.assert_array_equal(out, want)
  # A batch with one colour per image, on device, gives the same canvases.
  batch = rng.random((2, 5, 4, 3)).astype(np.float32)
  cols = rng.random((2, 3)).astype(np.float32)
  dev = np.asarray(preprocess.pad_canvas(jnp.asarray(batch), cols, 3, xp=jnp))
  for i in range(2):
    np.testing.assert_array_equal(dev[i], preprocess.pad_canvas(batch[i], cols[i], 3))
  np.testing.assert_array_equal(preprocess.pad_canvas(img, colour, 0), img)
  with pytest.raises(ValueError, match="pad=-1"):
    preprocess.pad_canvas(img, colour, -1)


def test_pad_brick_red_is_the_canvas_resized_back():
  img = np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8)
  canvas = np.full((48, 48, 3), preprocess.BRICK_RED, np.uint8)
  canvas[8:40, 8:40] = img
  np.testing.assert_array_equal(preprocess.pad_brick_red(img),
                                preprocess.resize(canvas, (32, 32)))
