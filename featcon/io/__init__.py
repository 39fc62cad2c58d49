"""Provenance and safe writing, shared by every stage, one module per job:

* :mod:`featcon.io.files`: :func:`atomic_write` (a temporary file in the same folder, then
  ``os.replace``: an interrupted run never leaves a half-written file), :func:`write_json`,
  and loaders (:func:`read_json`, :func:`load_npz`, :func:`load_cache_npz`) that report a
  corrupt file (:class:`CorruptFileError`) with its path and the fix;
* :mod:`featcon.io.provenance`: :func:`versions` (the packages and devices behind a result) and
  :func:`write_run_info`;
* :mod:`featcon.io.figures`: :func:`save_figure`;
* :mod:`featcon.io.metrics`: :class:`MetricsWriter` (JSON lines and TensorBoard scalars);
* :mod:`featcon.io.records`: config fingerprints and :func:`check_workdir`, which refuses a
  workdir whose results were made under another config (:class:`ConfigMismatchError`).

Use them as ``from featcon import io``; ``io.<name>``.
"""
from featcon.io.figures import FIGURE_DPI, save_figure
from featcon.io.files import (CorruptFileError, atomic_write, jsonable, load_cache_npz, load_npz,
                              read_json, write_json)
from featcon.io.metrics import MetricsWriter
from featcon.io.provenance import versions, write_run_info
from featcon.io.records import (ConfigMismatchError, check_workdir, config_diff, fingerprint,
                                flatten, format_diff, result_fields)

__all__ = ["FIGURE_DPI", "ConfigMismatchError", "CorruptFileError", "atomic_write", "check_workdir",
           "config_diff", "fingerprint", "flatten", "format_diff", "jsonable", "load_cache_npz",
           "load_npz", "MetricsWriter", "read_json", "result_fields", "save_figure", "versions", "write_json",
           "write_run_info"]
