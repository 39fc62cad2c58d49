"""Config records: what determines a stage's results (:func:`result_fields`,
:func:`fingerprint`), and refusing to reuse a workdir whose results were made under another
config (:func:`check_workdir`, the one mechanism every stage uses)."""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from typing import Any

from featcon.errors import FeatconError
from featcon.io import files
from featcon.io.files import CorruptFileError, read_json


class ConfigMismatchError(FeatconError, ValueError):
  """A workdir holds results of a config that differs in fields that determine the results."""


def _as_dict(config) -> dict:
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(config, default=str))  # tuples become lists, deep copy


def flatten(config, prefix: str = "") -> dict[str, Any]:
  """``{"a.b.c": value}`` of a nested dict or ConfigDict (tuples as lists)."""
  d = config if isinstance(config, dict) and prefix else _as_dict(config)
  out = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _ignored(field: str, ignore) -> bool:
  return any(fnmatch.fnmatchcase(field, pat) or field.startswith(pat + ".") for pat in ignore)


def result_fields(config, ignore=()) -> dict[str, Any]:
  """The flattened config less the fields matched by ``ignore`` (dotted names, shell patterns
  such as ``"probe.*"``, or a section name standing for everything below it)."""
  return {k: v for k, v in flatten(config).items() if not _ignored(k, ignore)}


def fingerprint(config, ignore=()) -> str:
  """SHA-1 of the fields of ``config`` that determine its results (see :func:`result_fields`)."""
  fields = result_fields(config, ignore)
  return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


_MISSING = "<absent>"


def config_diff(old, new, ignore=()) -> list[tuple[str, Any, Any]]:
  """``[(field, old value, new value)]`` for every field that differs (or exists in only one),
  sorted by field, leaving out those matched by ``ignore``."""
  a, b = result_fields(old, ignore), result_fields(new, ignore)
  return [(k, a.get(k, _MISSING), b.get(k, _MISSING)) for k in sorted(set(a) | set(b))
          if a.get(k, _MISSING) != b.get(k, _MISSING)]


def format_diff(diff) -> str:
  """One line per differing field: ``field: old -> new``."""
  return "\n".join(f"  {k}: {o!r} (recorded) -> {n!r} (now)" for k, o, n in diff)


def check_workdir(record_path: str, config, *, ignore=(), allow_changes: bool = False,
                  what: str = "results", fix: str = "") -> tuple[dict | None, list]:
  """Compares ``config`` with the config recorded in ``record_path`` (a JSON file with a
  ``"config"`` entry) on every field not matched by ``ignore``.

  Returns:
    (the record or None when there is none, the differences ``[(field, old, new)]``; empty or
    allowed by ``allow_changes``).

  Raises:
    ConfigMismatchError: one line naming each differing field with both values
      (:func:`describe_diff`), unless ``allow_changes``.
    CorruptFileError: when the record cannot be read (naming the file and the fix).
  """
  if not os.path.exists(record_path):
    return None, []
  record = read_json(record_path, fix="delete it (and the outputs next to it) and rerun, or "
                     "use a new workdir")
  if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
    raise CorruptFileError(f"{record_path!r} holds no 'config' object; delete it (and the "
                           "outputs next to it) and rerun, or use a new workdir")
  diff = config_diff(record["config"], config, ignore)
  if diff and not allow_changes:
    raise ConfigMismatchError(
        f"{record_path!r} records {what} made under a different config; the fields that "
        f"determine them differ: {describe_diff(diff, limit=20)}; "
        + (fix or "use the recorded values, a new workdir, or delete the old one"))
  return record, diff


# ---- provenance of one artifact ----------------------------------------------------------------
# Every finished unit of work (a sweep group or chunk, a distillation checkpoint, a feature cache,
# a probe, a results file) carries the stamp of what made it: the fields and inputs that
# determine it and their fingerprint. It is reused only when the stamp equals the current run's,
# so neither a deleted or damaged workdir record nor a renamed file can make old results pass
# for new ones.

def stamp(fields) -> dict:
  """The provenance stamp of an artifact: ``{"fingerprint": SHA-1, "fields": {dotted: value}}``.

  ``fields`` is a (nested) dict or ConfigDict of exactly what determines the artifact (config
  fields and inputs such as the data set, its split or the digest of an encoder's weights); the
  fingerprint is :func:`fingerprint` of it, so two stamps are equal exactly when every field is.
  """
  flat = flatten(fields)
  return {"fingerprint": fingerprint(flat), "fields": flat}


def stamp_diff(recorded, current: dict) -> list[tuple[str, Any, Any]]:
  """``[(field, recorded value, current value)]`` between a stored stamp (any JSON value read
  from a file: a missing or malformed stamp differs in the field ``"<stamp>"``) and
  ``current`` (a :func:`stamp`); empty when they match."""
  if (not isinstance(recorded, dict) or not isinstance(recorded.get("fields"), dict)
      or not isinstance(recorded.get("fingerprint"), str)):
    return [("<stamp>", _MISSING if recorded is None else "malformed", current["fingerprint"])]
  if recorded["fingerprint"] == current["fingerprint"]:
    return []
  diff = config_diff(recorded["fields"], current["fields"])
  return diff or [("<fingerprint>", recorded["fingerprint"], current["fingerprint"])]


def check_stamp(path: str, recorded, current: dict, *, what: str, fix: str,
                allow_changes: bool = False) -> list[tuple[str, Any, Any]]:
  """Refuses to reuse the artifact ``path`` whose stored stamp ``recorded`` differs from
  ``current`` (:func:`stamp_diff`).

  Returns:
    the differences (empty, or allowed by ``allow_changes``).

  Raises:
    ConfigMismatchError: one line naming ``path``, each differing field with both values
      (:func:`describe_diff`), and ``fix``.
  """
  diff = stamp_diff(recorded, current)
  if diff and not allow_changes:
    raise ConfigMismatchError(f"{path!r} holds {what} made under other settings "
                              f"({describe_diff(diff)}); {fix}")
  return diff


def describe_diff(diff, limit: int = 6) -> str:
  """The differences of :func:`stamp_diff` on one line (the first ``limit`` fields):
  ``field: old (recorded) -> new (now); ...``."""
  parts = [f"{k}: {o!r} (recorded) -> {n!r} (now)" for k, o, n in diff[:limit]]
  more = f" and {len(diff) - limit} more" if len(diff) > limit else ""
  return "; ".join(parts) + more


def load_checked_cache(path: str, spec: dict, stamp: dict | None = None,
                       what: str = "cache") -> dict[str, np.ndarray] | None:
  """A cache file's arrays when it is readable, holds every array of ``spec`` with the expected
  shape, dtype and finiteness (:func:`featcon.io.files.check_arrays`) and, with ``stamp``, the
  same provenance stamp (:func:`stamp`); otherwise None, with a warning naming the file and
  the reason, the file removed, so that the caller recomputes it. None too when there is no
  file."""
  if not os.path.exists(path):
    return None
  try:
    arrays = files.load_npz(path, fix="it is recomputed")
    files.check_arrays(path, arrays, spec, "it is recomputed")
    if stamp is not None:
      diff = stamp_diff(files.read_stamp(arrays), stamp)
      if diff:
        raise CorruptFileError(f"{path!r} was made under other settings "
                               f"({describe_diff(diff)}); it is recomputed")
  except CorruptFileError as e:
    return files.discard_cache(path, f"{what}: {e}", stacklevel=2)
  return arrays
