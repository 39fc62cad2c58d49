"""Executing the docs' notebooks and comparing what they print with what they were saved with.

A notebook in ``docs/notebooks/`` is saved with the outputs of its own execution; this module
runs it (nbclient, a fresh ``python3`` kernel started in the repository root) and compares the
*text* it prints, cell by cell, with the saved text:

- compared: stdout streams, the ``text/plain`` of results and displays, and errors;
- ignored: stderr (progress bars, warnings, the stages' summaries and timings), images' bytes
  (a figure still has to be there: its ``text/plain`` placeholder is compared), widgets;
- numbers are compared with a tolerance (:func:`same_text`): ``|a - b| <= atol + rtol max(|a|,
  |b|)``; the rest of the text must be equal up to runs of white space (a table's column widths
  follow its numbers' widths); memory addresses (``at 0x7f...``) are masked.

Re-execute and save a notebook (run from the repository root)::

    python -m featcon.testing.notebooks docs/notebooks/quickstart.ipynb

``--check`` executes without saving and exits 1 when the outputs drift (what
``tests/test_notebook.py`` does). Needs the test extra (nbclient, nbformat, ipykernel);
nothing in the library imports this module.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import sys

import nbclient
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")
WIDGET = "application/vnd.jupyter.widget-view+json"


def cell_texts(nb) -> list[str]:
  """The compared text of every code cell (module docstring), one string per code cell."""
  out = []
  for cell in nb.cells:
    if cell.cell_type != "code":
      continue
    parts = []
    for o in cell.get("outputs", []):
      kind = o.get("output_type")
      if kind == "stream" and o.get("name") == "stdout":
        parts.append(o.get("text", ""))
      elif kind in ("execute_result", "display_data") and WIDGET not in o.get("data", {}):
        parts.append(o.get("data", {}).get("text/plain", ""))
      elif kind == "error":
        parts.append(f"{o.get('ename')}: {o.get('evalue')}")
    out.append("\n".join(parts))
  return out


def _tokens(text: str):
  text = ADDRESS.sub("at 0x?", text)
  words, nums, pos = [], [], 0
  for m in NUMBER.finditer(text):
    words.append(text[pos:m.start()])
    nums.append(float(m.group()))
    pos = m.end()
  words.append(text[pos:])
  return [" ".join(w.split()) for w in words], nums


def same_text(saved: str, fresh: str, rtol: float, atol: float) -> str | None:
  """None when ``fresh`` equals ``saved`` up to white space and number tolerance, else a
  description of the first difference."""
  (sw, sn), (fw, fn) = _tokens(saved), _tokens(fresh)
  if sw != fw or len(sn) != len(fn):
    for a, b in zip(sw, fw):
      if a != b:
        return f"text differs: saved {a!r} vs fresh {b!r}"
    return f"text differs: saved {len(sw)} text pieces vs fresh {len(fw)}"
  for i, (a, b) in enumerate(zip(sn, fn)):
    if abs(a - b) > atol + rtol * max(abs(a), abs(b)):
      return (f"number {i} differs: saved {a!r} vs fresh {b!r} (rtol {rtol}, atol {atol}), "
              f"after {sw[i][-60:]!r}")
  return None


def differences(saved_nb, fresh_nb, rtol: float = 2e-3, atol: float = 1e-6) -> list[str]:
  """Every code cell whose compared text differs between the two notebooks, described."""
  saved, fresh = cell_texts(saved_nb), cell_texts(fresh_nb)
  if len(saved) != len(fresh):
    return [f"{len(saved)} saved code cells vs {len(fresh)} executed"]
  out = []
  for i, (s, f) in enumerate(zip(saved, fresh)):
    why = same_text(s, f, rtol, atol)
    if why is not None:
      out.append(f"code cell {i + 1}: {why}\n  saved: {s[:400]!r}\n  fresh: {f[:400]!r}")
  return out


def tolerances(nb) -> tuple[float, float]:
  """``(rtol, atol)`` of a notebook: ``rtol`` / ``atol`` of the ``featcon`` entry of its metadata
  (a notebook that trains a network states how far a float-level difference may carry), else
  2e-3 and 1e-6."""
  meta = nb.metadata.get("featcon", {})
  return float(meta.get("rtol", 2e-3)), float(meta.get("atol", 1e-6))


def execute(path: str, timeout: int = 900):
  """The notebook at ``path`` executed top to bottom in a fresh kernel started in the repository
  root (``JAX_PLATFORMS`` as in this process); returns the executed copy (the file is not
  written). A failing cell raises ``nbclient.exceptions.CellExecutionError``."""
  nb = nbformat.read(path, as_version=4)
  run = copy.deepcopy(nb)
  client = nbclient.NotebookClient(run, timeout=timeout, kernel_name="python3",
                                   resources={"metadata": {"path": ROOT}},
                                   coalesce_streams=True, record_timing=False)
  client.execute()
  return run


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("notebooks", nargs="+")
  p.add_argument("--check", action="store_true",
                 help="execute without saving; exit 1 when the outputs drift")
  args = p.parse_args(argv)
  status = 0
  for path in args.notebooks:
    saved = nbformat.read(path, as_version=4)
    fresh = execute(path)
    diffs = differences(saved, fresh, *tolerances(saved))
    if args.check:
      status |= bool(diffs)
      print(f"{path}: " + ("outputs match" if not diffs else "\n".join(diffs)))
    else:
      nbformat.write(fresh, path)
      print(f"{path}: executed and saved ({len(diffs)} code cells changed)")
  return status


if __name__ == "__main__":
  sys.exit(main())
