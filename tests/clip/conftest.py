"""Shared setup for the CLIP encoder tests.

* registers the ``slow`` marker (full-size RN50 / ViT-B/16 parity; CI runs it too);
* ``import_open_clip()``: works around torchvision 0.28.0's compiled ops failing to load beside the
  CPU torch 2.13.0 wheel ("operator torchvision::nms does not exist"): it defines the two missing
  operator schemas with ``torch.library`` and re-imports. The CLIP towers use no torchvision op.
* ``fixtures_dir``: tiny OpenAI-layout checkpoints generated once per session by
  ``tests/clip/make_fixtures.py`` into a temporary directory.
"""
import pytest


def import_open_clip():
  """``featcon.testing.clip_reference.import_open_clip`` (imported here only when called, so that
  this file loads without torch)."""
  from featcon.testing import clip_reference  # pylint: disable=import-outside-toplevel
  return clip_reference.import_open_clip()


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: full-size CLIP parity tests of the towers CI can afford (run in CI)")


@pytest.fixture(scope="session")
def open_clip():
  pytest.importorskip("torch")
  try:
    return import_open_clip()
  except ImportError as e:
    pytest.skip(f"open_clip not installed: {e}")


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory):
  pytest.importorskip("torch")
  try:
    import_open_clip()
  except ImportError as e:
    pytest.skip(f"open_clip not installed: {e}")
  from tests.clip import make_fixtures  # pylint: disable=import-outside-toplevel
  out = tmp_path_factory.mktemp("clip_fixtures")
  make_fixtures.main(str(out))
  return out
