"""safetensors files, parsed here with every header, offset, shape and dtype checked."""
from __future__ import annotations

import json
import math
import struct

import numpy as np

from featcon.checkpoints.common import (CheckpointError, MAX_NDIM, Budget, DTYPES,
    SAFETENSORS_DTYPES, is_int, strided_copy)

_MAX_HEADER = 100 << 20  # the safetensors format's own limit


def _no_duplicates(pairs):
  d = {}
  for k, v in pairs:
    if k in d:
      raise CheckpointError(f"duplicate key {k!r:.100} in the header")
    d[k] = v
  return d


def read_safetensors(path: str) -> dict:
  """Parse a safetensors file: 8-byte little-endian header length, JSON header, data buffer.

  Every entry must have a known ``dtype``, a ``shape`` of non-negative integers and
  ``data_offsets`` [begin, end] with end - begin = numel x itemsize; entries must tile the data
  buffer exactly (no gaps, overlaps or trailing bytes), as the format requires.
  """
  with open(path, "rb") as f:
    data = f.read()
  if len(data) < 8:
    raise CheckpointError(f"{path}: too short for a safetensors file ({len(data)} bytes)")
  (n,) = struct.unpack("<Q", data[:8])
  if n > _MAX_HEADER or 8 + n > len(data):
    raise CheckpointError(f"{path}: safetensors header length {n} runs past the end of the file "
                          f"({len(data)} bytes; truncated?)")
  try:
    header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
  except CheckpointError as e:
    raise CheckpointError(f"{path}: {e}") from e
  except (UnicodeDecodeError, ValueError, RecursionError) as e:
    raise CheckpointError(f"{path}: safetensors header is not valid JSON: {e!s:.200}") from e
  if not isinstance(header, dict):
    raise CheckpointError(f"{path}: safetensors header is a {type(header).__name__}, not an object")
  body = np.frombuffer(data, np.uint8, offset=8 + n)
  budget = Budget(path)
  entries = []
  for k, info in header.items():
    if k == "__metadata__":
      if not isinstance(info, dict):
        raise CheckpointError(f"{path}: __metadata__ must be an object")
      continue
    where = f"{path}: tensor {k!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
      raise CheckpointError(f"{where}: entry must have exactly dtype, shape, data_offsets; got "
                            f"{info!r:.200}")
    name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(name, str) or name not in SAFETENSORS_DTYPES:
      raise CheckpointError(f"{where}: dtype {name!r:.50} is not supported (allowed: "
                            f"{', '.join(SAFETENSORS_DTYPES)})")
    dtype = DTYPES[SAFETENSORS_DTYPES[name]]
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM or
        not all(is_int(s) and s >= 0 for s in shape)):
      raise CheckpointError(f"{where}: shape {shape!r:.100} must be a list of at most "
                            f"{MAX_NDIM} non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2 or
        not all(is_int(o) for o in offsets) or not 0 <= offsets[0] <= offsets[1] <= body.size):
      raise CheckpointError(f"{where}: data_offsets {offsets!r:.100} must be [begin, end] with "
                            f"0 <= begin <= end <= {body.size} (data buffer size; truncated?)")
    nbytes = math.prod(shape) * dtype.itemsize
    if offsets[1] - offsets[0] != nbytes:
      raise CheckpointError(f"{where}: shape {shape} x {name} needs {nbytes} bytes but "
                            f"data_offsets {offsets} span {offsets[1] - offsets[0]}")
    entries.append((offsets[0], offsets[1], k, shape, dtype))
  pos = 0
  for begin, end, k, _, _ in sorted(entries):
    if begin != pos:
      raise CheckpointError(f"{path}: tensor {k!r}: data_offsets start at {begin}, expected {pos} "
                            "(tensors overlap or leave a gap)")
    pos = end
  if pos != body.size:
    raise CheckpointError(f"{path}: tensors cover {pos} of the {body.size}-byte data buffer")
  out = {}
  for begin, end, k, shape, dtype in entries:
    flat = body[begin:end].view(dtype.storage)
    strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    out[k] = strided_copy(flat, 0, shape, strides, dtype, f"{path}: tensor {k!r}", budget)
  return out
