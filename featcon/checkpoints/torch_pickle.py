"""PyTorch archives (zip: TorchScript and ``torch.save``; legacy pre-1.6 pickles) read with a
restricted unpickler: no code from the file runs (the rules are in ``featcon/checkpoints/__init__.py``)."""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import pickle
import re
import struct
import zipfile
import zlib

import numpy as np

from featcon.checkpoints.common import (CheckpointError, Budget, DTYPES, DType, STORAGE_TYPES,
    budget_for, is_int, strided_copy)

class ScriptObject:
  """Inert stand-in for a pickled TorchScript object: holds its state, runs nothing."""

  def __init__(self):
    self._state = {}


def _script_class(qualname):
  return type(qualname.rsplit(".", 1)[-1], (ScriptObject,), {"torch_qualname": qualname})


@dataclasses.dataclass(frozen=True)
class _StorageTag:
  dtype: DType


@dataclasses.dataclass
class _Storage:
  key: str
  dtype: DType
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
               budget: Budget):
    super().__init__(data if isinstance(data, io.BytesIO) else io.BytesIO(data))
    self._path, self._member, self._zf, self._root, self.budget_for = path, member, zf, root, budget
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
    if module == "torch" and name in STORAGE_TYPES:
      return _StorageTag(DTYPES[STORAGE_TYPES[name]])
    if module == "torch" and name in DTYPES:
      return _StorageTag(DTYPES[name])
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
    if not (is_int(numel) and numel >= 0):
      raise CheckpointError(f"{self._where()}: bad storage size {numel!r:.100}")
    if key in self._storages:
      st = self._storages[key]
      if st.dtype != tag.dtype or st.array.size != numel:
        raise CheckpointError(f"{self._where()}: storage {key} used as both {st.dtype.name} x "
                              f"{st.array.size} and {tag.dtype.name} x {numel}")
      return st
    raw = _read_member(self._zf, f"{self._root}data/{key}", self._path, self.budget_for.left)
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
    if not (isinstance(key, str) and _KEY_RE.fullmatch(key)) or not (is_int(numel) and
                                                                      numel >= 0):
      raise CheckpointError(f"{self._where()}: bad storage key / size {key!r:.100} {numel!r:.50}")
    root = self._storages.setdefault(key, _Storage(key, tag.dtype, None, numel))
    if root.dtype != tag.dtype or root.numel != numel:
      raise CheckpointError(f"{self._where()}: storage {key} used with two types or sizes")
    if view is None:
      return root
    if not (isinstance(view, tuple) and len(view) == 3 and is_int(view[1]) and
            is_int(view[2]) and view[1] >= 0 and view[2] >= 0):
      raise CheckpointError(f"{self._where()}: bad storage view {view!r:.100}")
    return _Storage(key, tag.dtype, None, numel, (view[1], view[2]))

  def _rebuild_tensor(self, storage, offset, size, stride, *unused):
    self._tensor_index += 1
    if not isinstance(storage, _Storage):
      raise CheckpointError(f"{self._where()}: tensor without a storage")
    if storage.array is None:
      return _Pending(storage, (offset, size, stride), self._where())
    return strided_copy(storage.array, offset, size, stride, storage.dtype,
                         f"{self._where()} (storage data/{storage.key})", self.budget_for)

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


def read_torch_zip(path: str):
  budget = Budget(path)
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
    with _unpickling_errors(f"{path}: {member}",
                            " is not a valid checkpoint pickle (truncated or corrupt?)"):
      obj = unpickler.load()
  if isinstance(obj, ScriptObject):
    return _flatten_script(obj)
  return obj


@contextlib.contextmanager
def _unpickling_errors(where, invalid):
  """Every failure while unpickling as a :class:`CheckpointError` naming ``where``.

  A refused global or opcode reads ``<where>: <reason>``; malformed bytes, which surface as many
  exception types from the opcode handlers (UnpicklingError, EOFError, KeyError, IndexError,
  TypeError, ValueError, ...), read ``<where><invalid>: <type>: <message>``.
  """
  try:
    yield
  except CheckpointError:
    raise
  except _Refused as e:
    raise CheckpointError(f"{where}: {e}") from e
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"{where}{invalid}: {type(e).__name__}: {e!s:.200}") from e


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def read_legacy(path: str):
  """A legacy (pre-1.6, non-zip) ``torch.save`` file, with the same restricted unpickler.

  Layout: pickles of the magic number, the protocol version and a system-info dict, the object
  pickle (storages as persistent ids), a pickle of the storage keys, then for each key an int64
  element count and the raw little-endian bytes.
  """
  budget = Budget(path)
  with open(path, "rb") as f:
    buf = io.BytesIO(f.read())

  def unpickler(what):
    return _RestrictedUnpickler(buf, path, what, None, "", budget)

  with _unpickling_errors(path, ": not a valid torch.save file (truncated or corrupt?)"):
    if unpickler("header").load() != _LEGACY_MAGIC:
      raise CheckpointError(f"{path}: not a zip archive, safetensors or torch.save file "
                            "(truncated or corrupt?)")
    unpickler("header").load()  # protocol version
    unpickler("header").load()  # sys info (byte order, type sizes)
    main = unpickler("pickle")
    obj = main.load()
    keys = unpickler("storage keys").load()
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
    return strided_copy(flat, offset, size, stride, st.dtype, obj.where, budget)
  if isinstance(obj, dict):
    for k in list(obj):
      obj[k] = _resolve_pending(obj[k], storages, budget, depth + 1)
  elif isinstance(obj, list):
    obj[:] = [_resolve_pending(v, storages, budget, depth + 1) for v in obj]
  return obj


# ----------------------------------------------------------------------------- safetensors
