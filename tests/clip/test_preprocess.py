"""CLIP preprocessing vs open_clip's (torchvision + Pillow) reference transform."""
import os
import subprocess
import sys

import numpy as np
import pytest

from featcon import clip


def _grace_hopper():
  matplotlib = pytest.importorskip("matplotlib")
  from PIL import Image  # pylint: disable=import-outside-toplevel
  return Image.open(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))


@pytest.mark.parametrize("res", [224, 336, 32])
def test_matches_open_clip_transform_on_real_image(res, open_clip):
  img = _grace_hopper()
  ref = open_clip.image_transform(res, is_train=False)(img).numpy().transpose(1, 2, 0)
  ours = clip.preprocess(img, res)
  assert ours.dtype == np.float32 and ours.shape == (res, res, 3)
  np.testing.assert_array_equal(ours, ref)  # bit-identical
  np.testing.assert_array_equal(clip.preprocess(np.asarray(img), res), ref)


@pytest.mark.parametrize("shape", [(37, 53, 3), (100, 17, 3), (64, 64, 3), (300, 301, 3),
                                   (20, 30)])
def test_matches_reference_on_odd_shapes(shape, open_clip):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  a = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
  pil = Image.fromarray(a)
  ref = open_clip.image_transform(64, is_train=False)(pil).numpy().transpose(1, 2, 0)
  np.testing.assert_array_equal(clip.preprocess(a, 64), ref)


def test_resize_matches_pillow():
  from PIL import Image  # pylint: disable=import-outside-toplevel
  a = np.asarray(_grace_hopper())
  for h, w in [(224, 262), (50, 40), (700, 900)]:
    ref = np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC))
    np.testing.assert_array_equal(clip.resize_bicubic(a, h, w), ref)


def test_rejects_float_input():
  with pytest.raises(TypeError):
    clip.preprocess(np.zeros((8, 8, 3), np.float32), 8)


@pytest.mark.parametrize("shape,out", [((37, 53, 3), (64, 80)), ((300, 301, 3), (31, 17)),
                                       ((20, 30), (45, 9)), ((64, 64, 3), (64, 32))])
def test_pillow_backend_equals_numpy_port(shape, out):
  pytest.importorskip("PIL")
  a = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
  ours = clip.resize_bicubic(a, *out, backend="numpy")
  np.testing.assert_array_equal(clip.resize_bicubic(a, *out, backend="pillow"), ours)
  np.testing.assert_array_equal(clip.resize_bicubic(a, *out, backend="auto"), ours)
  with pytest.raises(ValueError, match="backend='pil'"):
    clip.resize_bicubic(a, *out, backend="pil")


def test_data_layer_uses_the_clip_transform():
  from featcon.data import preprocess as data_pre  # pylint: disable=import-outside-toplevel
  a = np.random.default_rng(5).integers(0, 256, (45, 70, 3), dtype=np.uint8)
  np.testing.assert_array_equal(data_pre.clip_preprocess(a, 32), clip.preprocess(a, 32))
  np.testing.assert_array_equal(data_pre.resize(a, (20, 21)), clip.resize_bicubic(a, 20, 21))
  np.testing.assert_array_equal(data_pre.CLIP_MEAN, np.asarray(clip.MEAN, np.float32))


def test_imports_without_torch_and_resizes_without_pillow():
  # featcon's own __init__ imports matplotlib, which imports Pillow, so Pillow is blocked only
  # after the import: backend="auto" must then fall back to the numpy port.
  code = ("import sys\n"
          "for m in ('torch', 'torchvision'): sys.modules[m] = None\n"
          "import numpy as np\n"
          "import featcon.clip as c\n"
          "for m in [m for m in sys.modules if m == 'PIL' or m.startswith('PIL.')]:\n"
          "  del sys.modules[m]\n"
          "sys.modules['PIL'] = None\n"
          "a = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)\n"
          "assert c.preprocess(a, 3, backend='auto').shape == (3, 3, 3)\n"
          "assert c.resize_bicubic(a, 8, 8, backend='auto').shape == (8, 8, 3)\n")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                     timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert r.returncode == 0, r.stderr[-2000:]
