"""Figures redrawn from the results saved beside them, for when the run directory that made them
is gone (the models, images and activations are not needed):

* :func:`real_experiment_figures`: Figure 1 (``scatter.png``) and the teacher's held-out curve
  (``teacher_heldout.png``) of an ``experiments.real_experiment`` folder, from its
  ``summary.json`` (:func:`featcon.analysis.table1.figures`, the code the experiment itself
  draws them with);
* :func:`selectivity_figure_from_json`: Figure 5's selectivity bars from an analyses JSON
  (``encoders/analyses.json`` or ``selectivity.json`` of ``experiments.analyze``, or a
  ``real_experiment`` ``summary.json``;
  :func:`featcon.analysis.suite.selectivity_figure`).

The Grad-CAM, PCA, activation-rate and density figures need per-image or per-unit arrays that the
JSON files do not hold; they are redrawn only by rerunning their analyses.
``python -m experiments.replot`` is the command line.
"""
import os

from featcon import io
from featcon.analysis import suite
from featcon.analysis import table1


def real_experiment_figures(root):
  """Redraws ``scatter.png`` and ``teacher_heldout.png`` in ``root`` from ``root/summary.json``;
  returns their paths."""
  summary = io.read_json(os.path.join(root, "summary.json"))
  if not isinstance(summary, dict) or "rows" not in summary or "fits" not in summary:
    raise io.CorruptFileError(f"{os.path.join(root, 'summary.json')}: no 'rows' and 'fits'; "
                              "expected the summary.json of experiments.real_experiment")
  return table1.figures(summary, root)


def _selectivity_from_headline(headline):
  """{layer: {encoder: {domain: mean}}} from the ``headline`` rows of a ``real_experiment``
  ``summary.json`` (``"selectivity, <domain> | <layer>"``, :func:`experiment.headline_numbers`);
  None when there are none."""
  if not isinstance(headline, dict):
    return None
  sel = {}
  for enc, row in headline.items():
    for key, v in (row.items() if isinstance(row, dict) else ()):
      if key.startswith("selectivity, ") and " | " in key and isinstance(v, (int, float)):
        dom, layer = key[len("selectivity, "):].rsplit(" | ", 1)
        sel.setdefault(layer, {}).setdefault(enc, {})[dom] = float(v)
  return sel or None


def selectivity_figure_from_json(json_path, path, encoders=(), setting=""):
  """Redraws the selectivity bars of ``json_path`` (an ``analyses.json`` with a ``selectivity``
  entry, a ``selectivity.json`` with ``mean_selectivity``, or the ``summary.json`` of
  ``experiments.real_experiment``, whose analyses' headline rows hold them) into ``path``,
  keeping only the
  encoders named in ``encoders`` (all when empty), in the file's order of layers and domains.

  Raises:
    io.CorruptFileError: the file holds no selectivity; ValueError: an encoder not in it.
  """
  data = io.read_json(json_path)
  sel = data.get("selectivity", data.get("mean_selectivity")) if isinstance(data, dict) else None
  if sel is None and isinstance(data, dict) and isinstance(data.get("analyses"), dict):
    sel = _selectivity_from_headline(data["analyses"].get("headline"))
    data = {}  # the analyses of real_experiment use configs/analyze.py:real (morcos)
  if not isinstance(sel, dict) or not sel:
    raise io.CorruptFileError(f"{json_path}: no 'selectivity' or 'mean_selectivity' entry; "
                              "expected analyses.json or selectivity.json of "
                              "experiments.analyze, or a real_experiment summary.json")
  present = list(dict.fromkeys(e for by_enc in sel.values() for e in by_enc))
  unknown = [e for e in encoders if e not in present]
  if unknown:
    raise ValueError(f"encoders={','.join(encoders)}: {unknown[0]!r} is not in {json_path}; "
                     f"allowed: {', '.join(present)}")
  keep = list(encoders) or present
  sel = {l: {e: by_enc[e] for e in keep if e in by_enc} for l, by_enc in sel.items()}
  domains = list(dict.fromkeys(d for by_enc in sel.values() for v in by_enc.values() for d in v))
  mode = data.get("mode") or (data.get("config") or {}).get("selectivity_mode", "morcos")
  return suite.selectivity_figure(sel, domains, mode, path, setting)
