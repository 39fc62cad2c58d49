"""Reading checkpoints into ``{name: numpy array}`` without running any code from the file.

Supported (local paths only, nothing is downloaded, torch is never imported):

* PyTorch zip archives: TorchScript ``.pt`` files (``torch.jit.save``, OpenAI's released CLIP
  models) and plain ``torch.save`` state dicts (also ``{"state_dict": ...}`` training checkpoints
  and ``OrderedDict`` state dicts carrying ``_metadata``);
* legacy (pre-1.6, non-zip) ``torch.save`` files, with the same unpickler;
* ``.safetensors`` files (parsed here; the ``safetensors`` package is not needed).

Torch archives are read by parsing ``data.pkl`` with a restricted unpickler built on the
pure-Python ``pickle._Unpickler`` whose opcode table is narrowed: globals resolve only to an
allow-list (tensor / parameter rebuild functions, storage and dtype tags, ``OrderedDict``, the
``torch.jit._pickle`` list builders) or, for TorchScript classes (``__torch__.*``), to inert
attribute containers; ``REDUCE`` may call only the allow-listed functions, ``NEWOBJ`` may only
create ``OrderedDict`` / inert containers, ``BUILD`` may only fill inert containers (a TorchScript
``__setstate__`` is never run; a non-dict state is kept as opaque data), and ``INST`` / ``OBJ`` /
``NEWOBJ_EX`` / extension-registry opcodes are refused. TorchScript code files in the archive
(``code/``) are never read. A TorchScript module's tensors are collected by attribute path, which
gives the keys of ``module.state_dict()``.

Every storage is checked against its zip member (exact byte count, uncompressed size within the
budget) and every tensor's size, stride and offset against its storage before a view is made; the
arrays returned in total may not exceed ``4 x file size + 64 MiB`` (a weights file never expands
more). Every violation, and every malformed zip, pickle or safetensors header, raises
:class:`CheckpointError` naming the file (and the tensor where there is one). See
``docs/reliability.md``.
"""
from __future__ import annotations

import os
import struct
import zipfile

import numpy as np

from featcon.checkpoints.common import CheckpointError
from featcon.checkpoints.safetensors import read_safetensors
from featcon.checkpoints.torch_pickle import read_legacy, read_torch_zip


def _extract_state_dict(obj, path):
  if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
  out = {}
  for k, v in obj.items():
    if not isinstance(v, np.ndarray) or not isinstance(k, str):
      continue
    if k.startswith("module."):
      k = k[len("module."):]
    out[k] = v
  return out


def _is_zip(path: str) -> bool:
  """``zipfile.is_zipfile``, which itself raises on some corrupt end records (e.g. a ZIP64 locator
  naming several disks); those files are zips to be refused by the zip reader."""
  try:
    return zipfile.is_zipfile(path)
  except (zipfile.BadZipFile, OSError, ValueError, OverflowError, struct.error):
    return True


def _is_safetensors(path: str) -> bool:
  if path.endswith(".safetensors"):
    return True
  with open(path, "rb") as f:
    head = f.read(9)
  return len(head) == 9 and head[8:9] == b"{" and not _is_zip(path)


def read_state_dict(path: str) -> dict:
  """Read a checkpoint file into a flat ``{key: numpy array}`` (dtypes as stored; bfloat16 is
  widened to float32). No code from the file is executed and torch is not imported.

  Accepts torch zip archives (TorchScript or ``torch.save`` state dicts, optionally under
  ``"state_dict"``, ``module.`` prefixes stripped), legacy non-zip ``torch.save`` files and
  safetensors files. Raises
  :class:`CheckpointError` naming the file (and tensor) for anything malformed, inconsistent,
  over the size budget or outside the allow-list; ``FileNotFoundError`` if ``path`` is missing.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(path)
  if _is_safetensors(path):
    return read_safetensors(path)
  if not _is_zip(path):
    return _extract_state_dict(read_legacy(path), path)
  return _extract_state_dict(read_torch_zip(path), path)
