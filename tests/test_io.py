"""featcon.io.save_figure: atomic, tight layout, closes the figure."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from featcon import io  # noqa: E402


def _png_size(path):
  with open(path, "rb") as f:
    head = f.read(24)
  assert head[:8] == b"\x89PNG\r\n\x1a\n"
  return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_save_figure_writes_png_at_dpi_and_closes(tmp_path):
  fig, ax = plt.subplots(figsize=(3.0, 2.0))
  ax.plot(np.arange(5))
  path = str(tmp_path / "f.png")
  assert io.save_figure(fig, path, dpi=50) == path
  assert _png_size(path) == (150, 100)  # 3 x 2 inches at 50 dpi
  assert fig.number not in plt.get_fignums()
  assert os.listdir(tmp_path) == ["f.png"]  # no temporary file left behind


def test_save_figure_format_from_extension(tmp_path):
  fig, _ = plt.subplots()
  path = io.save_figure(fig, str(tmp_path / "f.svg"))
  with open(path) as f:
    assert "<svg" in f.read()


def test_save_figure_failure_leaves_nothing_and_closes(tmp_path):
  fig, _ = plt.subplots()
  with pytest.raises(ValueError):
    io.save_figure(fig, str(tmp_path / "f.notaformat"))
  assert os.listdir(tmp_path) == []
  assert fig.number not in plt.get_fignums()


@pytest.mark.parametrize("dpi", [0, -3, "high", True])
def test_save_figure_rejects_bad_dpi(tmp_path, dpi):
  fig, _ = plt.subplots()
  with pytest.raises(ValueError, match="dpi"):
    io.save_figure(fig, str(tmp_path / "f.png"), dpi=dpi)
  plt.close(fig)
  with pytest.raises(ValueError, match="extension"):
    io.save_figure(plt.figure(), str(tmp_path / "noext"))
  assert os.listdir(tmp_path) == []
