"""The quickstart notebook executes top to bottom (its last cell asserts the finding)."""
import os
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quickstart_notebook_executes():
  nb = nbformat.read(os.path.join(ROOT, "docs", "notebooks", "quickstart.ipynb"), as_version=4)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": ROOT}})
  client.execute()
  outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
  assert "ReLU contaminates, identity does not." in outputs


def _notebook():
  return nbformat.read(os.path.join(ROOT, "docs", "notebooks", "quickstart.ipynb"), as_version=4)


def test_quickstart_is_colab_ready():
  """The badge and the install cell name the same repository (FEATCON_GITHUB), and the notebook
  is saved with its outputs, the figure included."""
  nb = _notebook()
  badge = re.search(r"colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/"
                    r"docs/notebooks/quickstart\.ipynb", nb.cells[0].source)
  assert badge, "no Open in Colab link in the first cell"
  repo = re.search(r"^FEATCON_GITHUB = '([^']+)'", "\n".join(
      c.source for c in nb.cells if c.cell_type == "code"), re.M)
  assert repo and repo.group(1) == badge.group(1), (repo and repo.group(1), badge.group(1))
  kinds = {k for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
           for k in o.get("data", {})}
  assert "image/png" in kinds, "saved without the figure"
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
  assert "ReLU contaminates, identity does not." in text, "saved without outputs"
