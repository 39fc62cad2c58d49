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

import collections
import dataclasses
import io
import json
import math
import os
import pickle
import re
import struct
import zipfile
import zlib

import numpy as np

MAX_NDIM = 32
_SLACK_BYTES = 64 << 20
_EXPANSION = 4  # returned bytes <= _EXPANSION * file size + _SLACK_BYTES


class CheckpointError(ValueError):
  """A checkpoint cannot be read or does not fit the requested architecture."""


@dataclasses.dataclass(frozen=True)
class _DType:
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


def _dt(name, np_dtype):
  return _DType(name, np.dtype(np_dtype).newbyteorder("<"))


_DTYPES = {d.name: d for d in [
    _dt("float64", np.float64), _dt("float32", np.float32), _dt("float16", np.float16),
    _dt("bfloat16", np.uint16), _dt("int64", np.int64), _dt("int32", np.int32),
    _dt("int16", np.int16), _dt("int8", np.int8), _dt("uint8", np.uint8), _dt("bool", np.uint8)]}
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")

# torch storage class names (pickled as ``torch.FloatStorage`` ...) -> element type.
_STORAGE_TYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}
# safetensors dtype names -> element type. Anything else (F8_*, U16, U32, U64, C64, ...) is refused.
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
    "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _budget(path: str) -> int:
  return _EXPANSION * os.path.getsize(path) + _SLACK_BYTES


class _Budget:
  """Counts the bytes of returned arrays against the file's budget."""

  def __init__(self, path):
    self.path, self.left = path, _budget(path)

  def take(self, nbytes: int, what: str):
    if nbytes > self.left:
      raise CheckpointError(
          f"{self.path}: {what} would decode to {nbytes} bytes, over the limit for a "
          f"{os.path.getsize(self.path)}-byte file ({_EXPANSION} x file size + "
          f"{_SLACK_BYTES >> 20} MiB in total)")
    self.left -= nbytes


def _strided_copy(flat: np.ndarray, offset, size, stride, dtype: _DType, where: str,
                  budget: _Budget) -> np.ndarray:
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
  if not all(_is_int(v) and v >= 0 for v in size + stride) or not (_is_int(offset) and
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


class ScriptObject:
  """Inert stand-in for a pickled TorchScript object: holds its state, runs nothing."""

  def __init__(self):
    self._state = {}


def _script_class(qualname):
  return type(qualname.rsplit(".", 1)[-1], (ScriptObject,), {"torch_qualname": qualname})


@dataclasses.dataclass(frozen=True)
class _StorageTag:
  dtype: _DType


@dataclasses.dataclass
class _Storage:
  key: str
  dtype: _DType
  array: np.ndarray | None  # flat raw storage-dtype array; None until a legacy file's data is read
  numel: int = 0
  view: tuple | None = None  # legacy storage views: (element offset, element count) of the root


@dataclasses.dataclass
class _Pending:
  """A legacy-format tensor whose storage bytes follow the pickle; built once they are read."""
  storage: _Storage
  args: tuple
  where: str


class _Refused(Exception):
  pass


_NOT_A_NAME = re.compile(r"\d*|cpu|cuda(:\d+)?|mps|meta|xpu(:\d+)?")  # storage keys, devices
_KEY_RE = re.compile(r"[A-Za-z0-9_]{1,64}")


class _RestrictedUnpickler(pickle._Unpickler):  # pylint: disable=protected-access
  """Pure-Python unpickler with a narrowed opcode table; see the module docstring."""

  dispatch = dict(pickle._Unpickler.dispatch)  # pylint: disable=protected-access

  def __init__(self, data, path: str, member: str, zf: zipfile.ZipFile | None, root: str,
               budget: _Budget):
    super().__init__(data if isinstance(data, io.BytesIO) else io.BytesIO(data))
    self._path, self._member, self._zf, self._root, self._budget = path, member, zf, root, budget
    self._storages = {}
    self._tensor_index = 0
    self._last_name = None  # the tensor's key precedes its value in state dicts and modules
    rebuild = self._rebuild_tensor
    param = self._rebuild_parameter
    self._functions = {
        ("torch._utils", "_rebuild_tensor_v2"): rebuild,
        ("torch._utils", "_rebuild_tensor"): rebuild,
        ("torch._utils", "_rebuild_parameter"): param,
        ("torch._utils", "_rebuild_parameter_with_state"): param,
        ("torch.jit._pickle", "build_intlist"): _as_list,
        ("torch.jit._pickle", "build_doublelist"): _as_list,
        ("torch.jit._pickle", "build_boollist"): _as_list,
        ("torch.jit._pickle", "build_tensorlist"): _as_list,
        ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    }
    self._callables = set(id(f) for f in self._functions.values()) | {id(collections.OrderedDict)}

  def _where(self):
    return (f"{self._path}: {self._member}, tensor #{self._tensor_index} "
            f"({self._last_name!r:.80})")

  def _track_name(self, handler):
    handler(self)
    s = self.stack[-1]
    if isinstance(s, str) and s != "storage" and not _NOT_A_NAME.fullmatch(s):
      self._last_name = s

  def find_class(self, module, name):
    key = (module, name)
    if key in self._functions:
      return self._functions[key]
    if key == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if module == "torch" and name in _STORAGE_TYPES:
      return _StorageTag(_DTYPES[_STORAGE_TYPES[name]])
    if module == "torch" and name in _DTYPES:
      return _StorageTag(_DTYPES[name])
    if module.startswith("__torch__.") or module == "__torch__":
      return _script_class(f"{module}.{name}")
    raise _Refused(f"refusing to load global {module}.{name} from a checkpoint")

  def persistent_load(self, pid):
    if self._zf is None:
      return self._legacy_persistent_load(pid)
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
      raise _Refused(f"unsupported persistent id {pid!r:.200}")
    _, tag, key, _location, numel = pid
    if not isinstance(tag, _StorageTag):
      raise CheckpointError(f"{self._where()}: unsupported storage type {tag!r:.100}")
    if not (isinstance(key, str) and _KEY_RE.fullmatch(key)):
      raise CheckpointError(f"{self._where()}: bad storage key {key!r:.100}")
    if not (_is_int(numel) and numel >= 0):
      raise CheckpointError(f"{self._where()}: bad storage size {numel!r:.100}")
    if key in self._storages:
      st = self._storages[key]
      if st.dtype != tag.dtype or st.array.size != numel:
        raise CheckpointError(f"{self._where()}: storage {key} used as both {st.dtype.name} x "
                              f"{st.array.size} and {tag.dtype.name} x {numel}")
      return st
    raw = _read_member(self._zf, f"{self._root}data/{key}", self._path, self._budget.left)
    if len(raw) != numel * tag.dtype.itemsize:
      raise CheckpointError(
          f"{self._where()}: storage data/{key} holds {len(raw)} bytes, expected {numel} x "
          f"{tag.dtype.name} = {numel * tag.dtype.itemsize} (truncated or corrupt?)")
    arr = np.frombuffer(raw, tag.dtype.storage)
    st = self._storages[key] = _Storage(key, tag.dtype, arr)
    return st

  def _legacy_persistent_load(self, pid):
    """Legacy (non-zip) ids: ('storage', type, root key, location, numel, view or None)."""
    if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
      raise _Refused(f"unsupported persistent id {pid!r:.200}")
    _, tag, key, _location, numel, view = pid
    if not isinstance(tag, _StorageTag):
      raise CheckpointError(f"{self._where()}: unsupported storage type {tag!r:.100}")
    if not (isinstance(key, str) and _KEY_RE.fullmatch(key)) or not (_is_int(numel) and
                                                                      numel >= 0):
      raise CheckpointError(f"{self._where()}: bad storage key / size {key!r:.100} {numel!r:.50}")
    root = self._storages.setdefault(key, _Storage(key, tag.dtype, None, numel))
    if root.dtype != tag.dtype or root.numel != numel:
      raise CheckpointError(f"{self._where()}: storage {key} used with two types or sizes")
    if view is None:
      return root
    if not (isinstance(view, tuple) and len(view) == 3 and _is_int(view[1]) and
            _is_int(view[2]) and view[1] >= 0 and view[2] >= 0):
      raise CheckpointError(f"{self._where()}: bad storage view {view!r:.100}")
    return _Storage(key, tag.dtype, None, numel, (view[1], view[2]))

  def _rebuild_tensor(self, storage, offset, size, stride, *unused):
    self._tensor_index += 1
    if not isinstance(storage, _Storage):
      raise CheckpointError(f"{self._where()}: tensor without a storage")
    if storage.array is None:
      return _Pending(storage, (offset, size, stride), self._where())
    return _strided_copy(storage.array, offset, size, stride, storage.dtype,
                         f"{self._where()} (storage data/{storage.key})", self._budget)

  def _rebuild_parameter(self, data, *unused):
    if not isinstance(data, (np.ndarray, _Pending)):
      raise CheckpointError(f"{self._where()}: parameter without tensor data")
    return data

  # Narrowed opcodes.
  def _load_reduce(self):
    args = self.stack.pop()
    func = self.stack[-1]
    if id(func) not in self._callables or not isinstance(args, tuple):
      raise _Refused(f"refusing to call {func!r:.100} while loading a checkpoint")
    self.stack[-1] = func(*args)

  def _load_newobj(self):
    args = self.stack.pop()
    cls = self.stack.pop()
    if cls is collections.OrderedDict and args == ():
      self.append(collections.OrderedDict())
    elif isinstance(cls, type) and issubclass(cls, ScriptObject) and args == ():
      self.append(cls())
    else:
      raise _Refused(f"refusing to create {cls!r:.100} while loading a checkpoint")

  def _load_build(self):
    state = self.stack.pop()
    inst = self.stack[-1]
    if isinstance(inst, ScriptObject):
      if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]  # (dict, slotstate)
      inst._state = dict(state) if isinstance(state, dict) else {"_": state}
    elif type(inst) is collections.OrderedDict:
      pass  # state dict ``_metadata`` (module versions): not needed
    else:
      raise _Refused(f"refusing to set the state of {type(inst).__name__}")

  def _load_setitems(self):
    items = self.pop_mark()
    target = self.stack[-1]
    if type(target) not in (dict, collections.OrderedDict) or len(items) % 2:
      raise _Refused(f"refusing to set items on {type(target).__name__}")
    for i in range(0, len(items), 2):
      target[items[i]] = items[i + 1]

  def _load_setitem(self):
    value = self.stack.pop()
    key = self.stack.pop()
    target = self.stack[-1]
    if type(target) not in (dict, collections.OrderedDict):
      raise _Refused(f"refusing to set items on {type(target).__name__}")
    target[key] = value

  def _load_appends(self):
    items = self.pop_mark()
    target = self.stack[-1]
    if type(target) is not list:
      raise _Refused(f"refusing to append to {type(target).__name__}")
    target.extend(items)

  def _load_append(self):
    value = self.stack.pop()
    target = self.stack[-1]
    if type(target) is not list:
      raise _Refused(f"refusing to append to {type(target).__name__}")
    target.append(value)

  def _refuse(self):
    raise _Refused("refusing pickle opcode (INST / OBJ / NEWOBJ_EX / EXT / ADDITEMS / buffers)")


_RU = _RestrictedUnpickler
for _op, _fn in [(pickle.REDUCE, _RU._load_reduce), (pickle.NEWOBJ, _RU._load_newobj),
                 (pickle.BUILD, _RU._load_build), (pickle.SETITEMS, _RU._load_setitems),
                 (pickle.SETITEM, _RU._load_setitem), (pickle.APPENDS, _RU._load_appends),
                 (pickle.APPEND, _RU._load_append)]:
  _RU.dispatch[_op[0]] = _fn
for _op in [pickle.INST, pickle.OBJ, pickle.NEWOBJ_EX, pickle.EXT1, pickle.EXT2, pickle.EXT4,
            pickle.ADDITEMS, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER, pickle.PERSID]:
  _RU.dispatch[_op[0]] = _RU._refuse


def _tracking(handler):
  return lambda self: self._track_name(handler)  # pylint: disable=protected-access


for _op in [pickle.BINUNICODE, pickle.SHORT_BINUNICODE, pickle.BINUNICODE8, pickle.UNICODE]:
  _RU.dispatch[_op[0]] = _tracking(_RU.dispatch[_op[0]])
del _RU, _op, _fn


def _as_list(x):
  if not isinstance(x, (list, tuple)):
    raise CheckpointError(f"list builder called on {type(x).__name__}")
  return list(x)


def _restore_type_tag(value, unused_tag):
  return value


def _read_member(zf: zipfile.ZipFile, name: str, path: str, limit: int) -> bytes:
  try:
    info = zf.getinfo(name)
  except KeyError as e:
    raise CheckpointError(f"{path}: archive member {name} missing (truncated file?)") from e
  if info.file_size > limit:
    raise CheckpointError(f"{path}: archive member {name} declares {info.file_size} bytes, over "
                          f"the limit ({limit} bytes left for this file)")
  try:
    return zf.read(info)
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError,
          ValueError, OverflowError) as e:
    raise CheckpointError(f"{path}: cannot read archive member {name} (corrupt?): {e}") from e


def _flatten_script(root: ScriptObject) -> dict:
  """Tensors reachable through TorchScript object attributes, keyed by dotted attribute path."""
  out, seen, todo = {}, set(), [("", root)]
  while todo:
    prefix, obj = todo.pop()
    if id(obj) in seen:
      continue
    seen.add(id(obj))
    for k, v in obj._state.items():  # pylint: disable=protected-access
      if not isinstance(k, str):
        continue
      if isinstance(v, np.ndarray):
        out.setdefault(f"{prefix}{k}", v)
      elif isinstance(v, ScriptObject):
        todo.append((f"{prefix}{k}.", v))
  return dict(sorted(out.items()))


def _read_torch_zip(path: str):
  budget = _Budget(path)
  try:
    zf = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError,
          OverflowError, struct.error, UnicodeDecodeError) as e:
    raise CheckpointError(f"{path}: not a readable zip archive (truncated or corrupt?): {e}") from e
  with zf:
    pkls = [n for n in zf.namelist() if n == "data.pkl" or
            (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(pkls) != 1:
      raise CheckpointError(f"{path}: expected one top-level data.pkl in the zip archive, found "
                            f"{len(pkls)}; not a PyTorch checkpoint")
    member = pkls[0]
    root = member[: -len("data.pkl")]
    data = _read_member(zf, member, path, budget.left)
    unpickler = _RestrictedUnpickler(data, path, member, zf, root, budget)
    try:
      obj = unpickler.load()
    except CheckpointError:
      raise
    except _Refused as e:
      raise CheckpointError(f"{path}: {member}: {e}") from e
    except Exception as e:  # pylint: disable=broad-except
      # Malformed pickle bytes surface as many exception types from the opcode handlers
      # (UnpicklingError, EOFError, KeyError, IndexError, TypeError, ValueError, ...).
      raise CheckpointError(f"{path}: {member} is not a valid checkpoint pickle (truncated or "
                            f"corrupt?): {type(e).__name__}: {e!s:.200}") from e
  if isinstance(obj, ScriptObject):
    return _flatten_script(obj)
  return obj


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def _read_legacy(path: str):
  """A legacy (pre-1.6, non-zip) ``torch.save`` file, with the same restricted unpickler.

  Layout: pickles of the magic number, the protocol version and a system-info dict, the object
  pickle (storages as persistent ids), a pickle of the storage keys, then for each key an int64
  element count and the raw little-endian bytes.
  """
  budget = _Budget(path)
  with open(path, "rb") as f:
    buf = io.BytesIO(f.read())

  def unpickler(what):
    return _RestrictedUnpickler(buf, path, what, None, "", budget)

  try:
    if unpickler("header").load() != _LEGACY_MAGIC:
      raise CheckpointError(f"{path}: not a zip archive, safetensors or torch.save file "
                            "(truncated or corrupt?)")
    unpickler("header").load()  # protocol version
    unpickler("header").load()  # sys info (byte order, type sizes)
    main = unpickler("pickle")
    obj = main.load()
    keys = unpickler("storage keys").load()
  except CheckpointError:
    raise
  except _Refused as e:
    raise CheckpointError(f"{path}: {e}") from e
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"{path}: not a valid torch.save file (truncated or corrupt?): "
                          f"{type(e).__name__}: {e!s:.200}") from e
  storages = main._storages  # pylint: disable=protected-access
  if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
    raise CheckpointError(f"{path}: storage key list does not match the storages the pickle uses")
  for key in keys:
    st = storages[key]
    head = buf.read(8)
    if len(head) != 8 or struct.unpack("<q", head)[0] != st.numel:
      raise CheckpointError(f"{path}: storage {key}: element count missing or not {st.numel} "
                            "(truncated or corrupt?)")
    nbytes = st.numel * st.dtype.itemsize
    if nbytes > budget.left:
      raise CheckpointError(f"{path}: storage {key} declares {nbytes} bytes, over the limit")
    raw = buf.read(nbytes)
    if len(raw) != nbytes:
      raise CheckpointError(f"{path}: storage {key} holds {len(raw)} of {nbytes} bytes "
                            "(truncated?)")
    st.array = np.frombuffer(raw, st.dtype.storage)
  return _resolve_pending(obj, storages, budget)


def _resolve_pending(obj, storages, budget, depth=0):
  """Replace the legacy reader's :class:`_Pending` tensors in dicts / lists by arrays."""
  if depth > 32:
    raise CheckpointError("checkpoint object nested deeper than 32 levels")
  if isinstance(obj, _Pending):
    st, (offset, size, stride) = obj.storage, obj.args
    flat = storages[st.key].array
    if st.view is not None:
      begin, count = st.view
      if begin + count > flat.size:
        raise CheckpointError(f"{obj.where}: storage view {st.view} past the end of storage "
                              f"{st.key} ({flat.size} elements)")
      flat = flat[begin:begin + count]
    return _strided_copy(flat, offset, size, stride, st.dtype, obj.where, budget)
  if isinstance(obj, dict):
    for k in list(obj):
      obj[k] = _resolve_pending(obj[k], storages, budget, depth + 1)
  elif isinstance(obj, list):
    obj[:] = [_resolve_pending(v, storages, budget, depth + 1) for v in obj]
  return obj


# ----------------------------------------------------------------------------- safetensors

_MAX_HEADER = 100 << 20  # the safetensors format's own limit


def _no_duplicates(pairs):
  d = {}
  for k, v in pairs:
    if k in d:
      raise CheckpointError(f"duplicate key {k!r:.100} in the header")
    d[k] = v
  return d


def _read_safetensors(path: str) -> dict:
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
  budget = _Budget(path)
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
    if not isinstance(name, str) or name not in _SAFETENSORS_DTYPES:
      raise CheckpointError(f"{where}: dtype {name!r:.50} is not supported (allowed: "
                            f"{', '.join(_SAFETENSORS_DTYPES)})")
    dtype = _DTYPES[_SAFETENSORS_DTYPES[name]]
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM or
        not all(_is_int(s) and s >= 0 for s in shape)):
      raise CheckpointError(f"{where}: shape {shape!r:.100} must be a list of at most "
                            f"{MAX_NDIM} non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2 or
        not all(_is_int(o) for o in offsets) or not 0 <= offsets[0] <= offsets[1] <= body.size):
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
    out[k] = _strided_copy(flat, 0, shape, strides, dtype, f"{path}: tensor {k!r}", budget)
  return out


# ----------------------------------------------------------------------------- entry point


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
    return _read_safetensors(path)
  if not _is_zip(path):
    return _extract_state_dict(_read_legacy(path), path)
  return _extract_state_dict(_read_torch_zip(path), path)
