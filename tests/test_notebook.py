"""The docs' notebooks: their saved outputs are those of a fresh execution (text compared cell by
cell, numbers with a tolerance: featcon/testing/notebooks.py), and their Colab install cell
installs from an uploaded wheel, an uploaded checkout or GitHub, or says in one line what to do.
"""
import contextlib
import copy
import importlib.util
import io
import os
import subprocess
import sys
import types

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
from featcon.testing import notebooks  # pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = ("quickstart.ipynb", "deep_stage.ipynb")
LAST_LINE = {"quickstart.ipynb": "ReLU contaminates, identity does not.",
             "deep_stage.ipynb": "the student matches the teacher in distribution"}


def _read(name):
  return nbformat.read(os.path.join(ROOT, "docs", "notebooks", name), as_version=4)


def _check_fresh_execution(name, tmp_path, monkeypatch):
  monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile.mkdtemp() lands here
  saved = _read(name)
  fresh = notebooks.execute(os.path.join(ROOT, "docs", "notebooks", name))
  diffs = notebooks.differences(saved, fresh, *notebooks.tolerances(saved))
  assert not diffs, (f"docs/notebooks/{name}: saved outputs differ from a fresh execution; "
                     f"re-execute and save it with python -m featcon.testing.notebooks "
                     f"docs/notebooks/{name}\n" + "\n".join(diffs))
  assert LAST_LINE[name] in notebooks.cell_texts(fresh)[-1]


def test_quickstart_outputs_are_its_own(tmp_path, monkeypatch):
  _check_fresh_execution("quickstart.ipynb", tmp_path, monkeypatch)


@pytest.mark.slow
def test_deep_stage_outputs_are_its_own(tmp_path, monkeypatch):
  _check_fresh_execution("deep_stage.ipynb", tmp_path, monkeypatch)
  assert any(d.startswith("featcon_digits_") for d in os.listdir(tmp_path))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_saved_with_every_output(name):
  """Executed top to bottom once (execution counts 1..n, no error), the figures included."""
  nb = _read(name)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
  kinds = [o.output_type for c in code for o in c.outputs]
  assert "error" not in kinds
  assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "no figure"
  assert LAST_LINE[name] in notebooks.cell_texts(nb)[-1], "saved without its outputs"
  assert "OWNER/REPO" not in "".join(c.source for c in nb.cells)


def _text_nb(*cells):
  nb = nbformat.v4.new_notebook()
  for outputs in cells:
    c = nbformat.v4.new_code_cell("")
    c.outputs = [nbformat.v4.new_output(**o) for o in outputs]
    nb.cells.append(c)
  return nb


def _stdout(text):
  return {"output_type": "stream", "name": "stdout", "text": text}


def test_comparison_tolerates_formatting_and_catches_drift():
  table = "       ood_risk  bg_corr\nrelu   0.61359  0.471991\n"
  wider = "        ood_risk   bg_corr\nrelu    0.613591  0.471990\n"
  assert notebooks.same_text(table, wider, 2e-3, 1e-6) is None
  why = notebooks.same_text(table, table.replace("0.61359", "0.798491"), 2e-3, 1e-6)
  assert why and "saved 0.61359 vs fresh 0.798491" in why
  assert "text differs" in notebooks.same_text("relu 0.6", "gelu 0.6", 2e-3, 1e-6)
  assert "text differs" in notebooks.same_text("a 1 2", "a 1", 2e-3, 1e-6)
  assert notebooks.same_text("<Image object at 0x7f12ab>", "<Image object at 0x55aa>", 0, 0) \
      is None
  img = {"output_type": "display_data", "data": {"image/png": "AAAA", "text/plain": "<Figure>"}}
  bar = {"output_type": "stream", "name": "stderr", "text": "distill: 100%|#####| 150/150 12.3s"}
  saved = _text_nb([_stdout("acc 0.9444\n"), img, bar])
  fresh = _text_nb([_stdout("acc 0.9444\n"), dict(img, data={"image/png": "BBBB",
                                                             "text/plain": "<Figure>"})])
  assert notebooks.differences(saved, fresh) == []  # image bytes and stderr ignored
  drift = _text_nb([_stdout("acc 0.9000\n"), img])
  assert notebooks.differences(saved, drift)[0].startswith("code cell 1: number 0 differs")
  assert "1 saved code cells vs 2" in notebooks.differences(saved, _text_nb([], []))[0]
  err = _text_nb([{"output_type": "error", "ename": "ValueError", "evalue": "bad",
                   "traceback": []}])
  assert notebooks.differences(_text_nb([]), err)


def test_saved_quickstart_would_fail_with_a_stale_number():
  saved = _read("quickstart.ipynb")
  stale = copy.deepcopy(saved)
  cell = next(c for c in stale.cells if c.cell_type == "code" and "ood_risk" in c.source)
  out = next(o for o in cell.outputs if o.output_type == "execute_result")
  lines = out.data["text/plain"].splitlines()
  relu = next(i for i, l in enumerate(lines) if l.startswith("relu"))
  values = lines[relu].split()
  values[2] = f"{float(values[2]) * 1.3:.6f}"  # the ReLU row's ood_risk, 30 % off
  lines[relu] = "  ".join(values)
  out.data["text/plain"] = "\n".join(lines)
  assert notebooks.differences(saved, stale)
  assert notebooks.differences(saved, copy.deepcopy(saved)) == []


# ----------------------------------------------------------------------------- install cell


def _install_cell(name):
  nb = _read(name)
  return next(c.source for c in nb.cells if c.cell_type == "code" and "FEATCON_GITHUB" in c.source)


def _run_install_cell(name, cwd, monkeypatch, colab=True, github=""):
  """Runs the notebook's install cell as Colab would (a ``google.colab`` module, ``cwd`` as the
  working directory), with pip replaced by a recorder; returns (pip calls, stdout, stopped)."""
  calls = []
  monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
  if colab:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
  monkeypatch.chdir(cwd)
  monkeypatch.setenv("FEATCON_GITHUB", github)
  out, stopped = io.StringIO(), False
  with contextlib.redirect_stdout(out):
    try:
      exec(compile(_install_cell(name), name, "exec"), {})  # pylint: disable=exec-used
    except Exception as e:  # pylint: disable=broad-except
      assert type(e).__name__ == "StopNotebook" and e._render_traceback_() == []  # pylint: disable=protected-access
      stopped = True
  return calls, out.getvalue(), stopped


@pytest.mark.parametrize("name,extras", [("quickstart.ipynb", ""),
                                         ("deep_stage.ipynb", "[clip,data,pretrained]")])
def test_install_cell_sources(name, extras, tmp_path, monkeypatch):
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  # Nothing uploaded, no repository named: one line saying what to do, and a clean stop.
  calls, out, stopped = _run_install_cell(name, tmp_path, monkeypatch)
  assert stopped and calls == [] and len(out.strip().splitlines()) == 1
  assert "upload a featcon-*.whl or the repository folder" in out and "FEATCON_GITHUB" in out
  # GitHub, by owner/name or by URL.
  calls, out, stopped = _run_install_cell(name, tmp_path, monkeypatch, github="someone/featcon")
  assert not stopped and out == ""
  assert calls == [pip + [f"featcon{extras} @ git+https://github.com/someone/featcon"]]
  calls, _, _ = _run_install_cell(name, tmp_path, monkeypatch, github="https://host/x.git")
  assert calls == [pip + [f"featcon{extras} @ git+https://host/x.git"]]
  # An uploaded checkout (a folder with setup.py and featcon/) wins over GitHub.
  repo = tmp_path / "featcon-main"
  (repo / "featcon").mkdir(parents=True)
  (repo / "setup.py").write_text("")
  (repo / "featcon" / "__init__.py").write_text("")
  calls, _, _ = _run_install_cell(name, tmp_path, monkeypatch, github="someone/featcon")
  assert calls == [pip + [str(repo) + extras]]
  # An uploaded wheel wins over both.
  wheel = tmp_path / "featcon-0.1.0-py3-none-any.whl"
  wheel.write_bytes(b"")
  calls, _, _ = _run_install_cell(name, tmp_path, monkeypatch, github="someone/featcon")
  assert calls == [pip + [str(wheel) + extras]]


def test_install_cell_outside_colab_installs_nothing(tmp_path, monkeypatch):
  monkeypatch.delitem(sys.modules, "google.colab", raising=False)
  calls, out, stopped = _run_install_cell("deep_stage.ipynb", tmp_path, monkeypatch, colab=False)
  assert calls == [] and out == "" and not stopped  # featcon is importable here
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  calls, out, stopped = _run_install_cell("deep_stage.ipynb", tmp_path, monkeypatch, colab=False)
  assert stopped and calls == [] and "pip install -e '.[clip,data,pretrained]'" in out
