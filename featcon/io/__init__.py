"""Provenance and safe writing, shared by every stage, one module per job:

* :mod:`featcon.io.files`: :func:`atomic_write` (a temporary file in the same folder, then
  ``os.replace``: an interrupted run never leaves a half-written file), :func:`write_json`,
  and loaders (:func:`read_json`, :func:`load_npz`, :func:`load_cache_npz`) that report a
  corrupt file (:class:`CorruptFileError`) with its path and the fix;
* :mod:`featcon.io.provenance`: :func:`versions` (the packages and devices behind a result),
  :func:`write_run_info` and :func:`tree_digest` (the identity of a tree of arrays);
* :mod:`featcon.io.figures`: :func:`save_figure`;
* :mod:`featcon.io.metrics`: :class:`MetricsWriter` (JSON lines and TensorBoard scalars);
* :mod:`featcon.io.records`: config fingerprints and :func:`check_workdir`, which refuses a
  workdir whose results were made under another config (:class:`ConfigMismatchError`), and the
  provenance stamp every finished artifact carries (:func:`stamp`, :func:`stamp_diff`,
  :func:`check_stamp`).

Use them as ``from featcon import io``; ``io.<name>``.
"""
from featcon.io.figures import FIGURE_DPI, save_figure
from featcon.io.files import (STAMP_KEY, CorruptFileError, atomic_write, check_arrays, jsonable,
                              load_cache_npz, load_npz, read_json, read_stamp, stamp_array,
                              write_json)
from featcon.io.metrics import MetricsWriter
from featcon.io.provenance import tree_digest, versions, write_run_info
from featcon.io.records import (ConfigMismatchError, check_stamp, check_workdir, config_diff,
                                describe_diff, fingerprint, flatten, format_diff,
                                load_checked_cache, result_fields, stamp, stamp_diff)

__all__ = ["FIGURE_DPI", "STAMP_KEY", "ConfigMismatchError", "CorruptFileError",
           "MetricsWriter", "atomic_write", "check_arrays", "check_stamp", "check_workdir",
           "config_diff", "describe_diff", "fingerprint", "flatten", "format_diff", "jsonable",
           "load_cache_npz", "load_checked_cache", "load_npz", "read_json", "read_stamp",
           "result_fields", "save_figure", "stamp", "stamp_array", "stamp_diff", "tree_digest",
           "versions", "write_json",
           "write_run_info"]
