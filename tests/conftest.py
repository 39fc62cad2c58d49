"""Repository-wide pytest configuration.

Marker ``slow``: long measurements (minutes), deselected by default. Run them with
``python -m pytest -m slow tests`` (any ``-m`` expression that names ``slow`` selects them).
"""
import os

os.environ.setdefault("XLA_FLAGS", "")


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: long measurement, deselected unless -m selects it "
      "(python -m pytest -m slow tests)")


def pytest_collection_modifyitems(config, items):
  if "slow" in (config.option.markexpr or ""):
    return
  keep = [it for it in items if it.get_closest_marker("slow") is None]
  dropped = [it for it in items if it.get_closest_marker("slow") is not None]
  if dropped:
    config.hook.pytest_deselected(items=dropped)
    items[:] = keep
