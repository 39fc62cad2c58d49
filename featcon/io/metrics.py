"""Metric streams of long runs: JSON lines and TensorBoard event files (:class:`MetricsWriter`),
used by the deep stage's training loop and by the theory sweep."""
from __future__ import annotations

import json
import os
from typing import Any

from featcon import distributed


class MetricsWriter:
  """Appends one JSON line per record to ``path`` (kept across resumes) and, with
  ``tensorboard``, writes the record's numeric fields as TensorBoard scalars (tag
  ``<stage>/<field>``, or ``<field>`` for a record without ``stage`` when ``tb_dir`` is given,
  at the record's ``step``) to event files in ``tb_dir`` (default ``<dir of path>/tensorboard``;
  tensorboardX: no TensorFlow needed). ``tensorboard --logdir <workdir>`` shows every stage.

  Args:
    path: the JSON-lines file, or None for event files only (then ``tb_dir`` is required).
    tensorboard: write event files.
    tb_dir: the folder of the event files (one TensorBoard "run").
  """

  def __init__(self, path: str | None, tensorboard: bool = True, tb_dir: str | None = None):
    if path is None and (tb_dir is None or not tensorboard):
      raise ValueError("MetricsWriter: path=None needs tensorboard=True and a tb_dir; allowed: a "
                       "JSON-lines path, or event files in a given tb_dir")
    if path is not None:
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    self.path = path
    self._default_stage = "train" if tb_dir is None else None
    if tensorboard:
      self.tb_dir = tb_dir or os.path.join(os.path.dirname(path), "tensorboard")
    else:
      self.tb_dir = None
    self._tb = None

  def write(self, record: dict[str, Any]):
    if not distributed.is_main():  # one metrics file for a multi-process run
      return
    if self.path is not None:
      with open(self.path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    if self.tb_dir is None or "step" not in record:
      return
    if self._tb is None:
      # tensorboardX is imported on first use: at module level it would add seconds to every
      # `import featcon` (it pulls in protobuf and probes for torch).
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(self.tb_dir, flush_secs=10)
    stage = record.get("stage", self._default_stage)
    for k, v in record.items():
      if k in ("stage", "step") or isinstance(v, bool) or not isinstance(v, (int, float)):
        continue
      self._tb.add_scalar(f"{stage}/{k}" if stage else k, float(v), int(record["step"]))

  def flush(self):
    if self._tb is not None:
      self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()
      self._tb = None
