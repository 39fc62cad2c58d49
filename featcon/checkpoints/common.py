"""What every checkpoint reader shares: the error type, dtypes, the size budget and the
bounds-checked strided copy that turns a storage into a tensor without reading outside it."""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from featcon.errors import FeatconError

MAX_NDIM = 32
_SLACK_BYTES = 64 << 20
_EXPANSION = 4  # returned bytes <= _EXPANSION * file size + _SLACK_BYTES


class CheckpointError(FeatconError, ValueError):
  """A checkpoint cannot be read or does not fit the requested architecture."""


@dataclasses.dataclass(frozen=True)
class DType:
  """A tensor element type: its torch / safetensors name and numpy storage dtype."""
  name: str
  storage: np.dtype  # what the raw bytes are read as (bfloat16 as uint16)

  @property
  def itemsize(self) -> int:
    return self.storage.itemsize

  def decode(self, raw: np.ndarray) -> np.ndarray:
    """Raw storage-dtype array -> the returned array (bfloat16 widened exactly to float32)."""
    if self.name == "bfloat16":
      return (raw.astype(np.uint32) << 16).view(np.float32)
    if self.name == "bool":
      return raw != 0
    return raw


def make_dtype(name, np_dtype):
  return DType(name, np.dtype(np_dtype).newbyteorder("<"))


DTYPES = {d.name: d for d in [
    make_dtype("float64", np.float64), make_dtype("float32", np.float32), make_dtype("float16", np.float16),
    make_dtype("bfloat16", np.uint16), make_dtype("int64", np.int64), make_dtype("int32", np.int32),
    make_dtype("int16", np.int16), make_dtype("int8", np.int8), make_dtype("uint8", np.uint8), make_dtype("bool", np.uint8)]}
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")

# torch storage class names (pickled as ``torch.FloatStorage`` ...) -> element type.
STORAGE_TYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}
# safetensors dtype names -> element type. Anything else (F8_*, U16, U32, U64, C64, ...) is refused.
SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
    "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


def is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def budget_for(path: str) -> int:
  return _EXPANSION * os.path.getsize(path) + _SLACK_BYTES


class Budget:
  """Counts the bytes of returned arrays against the file's budget."""

  def __init__(self, path):
    self.path, self.left = path, budget_for(path)

  def take(self, nbytes: int, what: str):
    if nbytes > self.left:
      raise CheckpointError(
          f"{self.path}: {what} would decode to {nbytes} bytes, over the limit for a "
          f"{os.path.getsize(self.path)}-byte file ({_EXPANSION} x file size + "
          f"{_SLACK_BYTES >> 20} MiB in total)")
    self.left -= nbytes


def strided_copy(flat: np.ndarray, offset, size, stride, dtype: DType, where: str,
                  budget: Budget) -> np.ndarray:
  """Copy the tensor (offset, size, stride) out of the 1-d storage ``flat``, all bounds checked.

  ``size`` and ``stride`` are element counts; every index the tensor touches must lie inside
  ``flat``, which is checked with exact integers before any view is made.
  """
  if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
    raise CheckpointError(f"{where}: size / stride must be sequences, got {size!r} / {stride!r}")
  size, stride = tuple(size), tuple(stride)
  if len(size) != len(stride) or len(size) > MAX_NDIM:
    raise CheckpointError(f"{where}: size {size} and stride {stride} must have the same length "
                          f"<= {MAX_NDIM}")
  if not all(is_int(v) and v >= 0 for v in size + stride) or not (is_int(offset) and
                                                                      offset >= 0):
    raise CheckpointError(f"{where}: size {size}, stride {stride} and offset {offset!r} must be "
                          "non-negative integers")
  numel = math.prod(size)
  if numel == 0:
    if offset > flat.size:
      raise CheckpointError(f"{where}: offset {offset} past the end of its storage "
                            f"({flat.size} elements)")
    return dtype.decode(np.zeros(size, dtype.storage))
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= flat.size:
    raise CheckpointError(
        f"{where}: size {size}, stride {stride}, offset {offset} reach element {last}, past the "
        f"end of its storage ({flat.size} elements)")
  out_itemsize = 4 if dtype.name == "bfloat16" else dtype.itemsize
  budget.take(numel * out_itemsize, where)
  base = flat[offset:]
  view = np.lib.stride_tricks.as_strided(base, shape=size,
                                         strides=tuple(s * flat.itemsize for s in stride),
                                         writeable=False)
  return dtype.decode(np.array(view))


# ----------------------------------------------------------------------------- torch zip archives
