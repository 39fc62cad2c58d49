"""Which images BatchNorm recalibration reads (featcon/distill/batchnorm.py, image_batches): the
first ``num_images`` of the set, in order, in full batches, the remainder dropped."""
import numpy as np
import pytest

from featcon.data import Loader, registry
from featcon.data.sources import ArraySource
from featcon.distill import batchnorm


@pytest.mark.parametrize("num_images, batches", [(8, 2), (11, 2), (12, 3), (50, 3)])
def test_image_batches_are_the_first_images_in_full_batches(num_images, batches):
  rng = np.random.default_rng(0)
  src = ArraySource(rng.integers(0, 256, (13, 6, 6, 3), dtype=np.uint8), np.zeros(13, int))
  ds = registry.Dataset("toy", "train", src, 1)
  got = list(batchnorm.image_batches(ds, 6, 4, num_images, workers=1))
  assert len(got) == batches and all(b.shape == (4, 6, 6, 3) for b in got)
  # the loader's preprocessing of images 0 .. 4 * batches - 1, in order
  want = next(Loader(src, 13, 6, workers=1).eval_iter())["image"][:4 * batches]
  np.testing.assert_array_equal(np.concatenate(got), want)
  with pytest.raises(ValueError, match="fewer than batch_size"):
    list(batchnorm.image_batches(ds, 6, 4, 3, workers=1))
