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
    ConfigMismatchError: naming each differing field with both values, unless
      ``allow_changes``.
    CorruptFileError: when the record cannot be read (naming the file and the fix).
  """
  if not os.path.exists(record_path):
    return None, []
  record = read_json(record_path, fix="delete it (and the outputs next to it) and rerun, or "
                     "use a new workdir")
  if not isinstance(record, dict) or "config" not in record:
    raise CorruptFileError(f"{record_path!r} holds no 'config' entry; delete it (and the "
                           "outputs next to it) and rerun, or use a new workdir")
  diff = config_diff(record["config"], config, ignore)
  if diff and not allow_changes:
    raise ConfigMismatchError(
        f"{record_path!r} records {what} made under a different config; the fields that "
        f"determine them differ:\n{format_diff(diff)}\n"
        + (fix or "use the recorded values, a new workdir, or delete the old one"))
  return record, diff
