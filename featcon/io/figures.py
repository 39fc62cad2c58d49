"""Figures of every stage, written atomically (:func:`save_figure`)."""
from __future__ import annotations

import os
import sys

from featcon.io.files import atomic_write


FIGURE_DPI = 110


def save_figure(fig, path: str, dpi: int = FIGURE_DPI) -> str:
  """Writes a Matplotlib figure atomically, with a tight layout, and closes it.

  The format follows the file name's extension (``.png``, ``.pdf``, ``.svg``, ...).

  Args:
    fig: a ``matplotlib.figure.Figure``.
    path: the file to write.
    dpi: resolution of raster formats, dots per inch (positive).

  Returns:
    ``path``.

  Raises:
    ValueError: for a non-positive ``dpi`` or a path without an extension, before writing.
  """
  if not (isinstance(dpi, (int, float)) and not isinstance(dpi, bool) and dpi > 0):
    raise ValueError(f"save_figure: dpi={dpi!r}; allowed: a positive number")
  fmt = os.path.splitext(path)[1][1:].lower()
  if not fmt:
    raise ValueError(f"save_figure: path={path!r} has no extension; allowed: a file name "
                     "ending in a Matplotlib format such as .png, .pdf or .svg")
  if fig.get_layout_engine() is None:  # a figure made with layout="constrained" keeps it
    fig.tight_layout()
  try:
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), binary=True)
  finally:
    # A figure made through pyplot is registered there until closed; pyplot is then imported.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
      pyplot.close(fig)
  return path
