"""Reading CLIP checkpoints into ``{name: numpy array}`` without running code from the file.

Supported (local paths only, nothing is downloaded):

* PyTorch zip archives: OpenAI's released TorchScript ``.pt`` files (``torch.jit.save``) and plain
  ``torch.save`` state dicts (also ``{"state_dict": ...}`` training checkpoints);
* ``.safetensors`` files.

The torch-free reader opens the zip, unpickles ``data.pkl`` with a restricted unpickler that only
resolves an allow-list of tensor-rebuild globals (everything else raises), and maps storages to
numpy arrays. TorchScript module objects (``__torch__.*`` classes) become inert attribute
containers whose tensors are collected by attribute path, which gives the same keys as
``module.state_dict()``. Legacy (pre-1.6, non-zip) pickles are not supported without torch.
"""
from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import warnings
import zipfile

import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_TORCH_DTYPES = {
    "float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": "bfloat16",
    "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
    "bool": np.bool_,
}


class CheckpointError(ValueError):
  """A checkpoint cannot be read or does not fit the requested architecture."""


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
  return (raw.astype(np.uint32) << 16).view(np.float32)


class _StorageType:
  def __init__(self, dtype):
    self.dtype = dtype


class _Storage:
  """A lazily decoded storage: a flat numpy array of the storage dtype."""

  def __init__(self, data: bytes, dtype):
    if isinstance(dtype, str) and dtype == "bfloat16":
      self.array = _bf16_to_f32(np.frombuffer(data, np.uint16))
    else:
      self.array = np.frombuffer(data, dtype)


class _TorchDtype:
  def __init__(self, name):
    self.name = name


def _rebuild_tensor(storage, offset, size, stride, *unused):
  arr = storage.array
  size, stride = tuple(size), tuple(stride)
  if not size:
    return np.array(arr[offset])
  n = arr.itemsize
  view = np.lib.stride_tricks.as_strided(arr[offset:], shape=size,
                                         strides=tuple(s * n for s in stride))
  return np.array(view)


def _rebuild_parameter(data, *unused):
  return data


class ScriptObject:
  """Inert stand-in for a pickled TorchScript module; holds its attribute dict, runs nothing."""
  _state: dict = {}  # read-only default when the pickle never calls __setstate__

  def __init__(self, *args):
    self.__dict__["_qualname"] = None
    self.__dict__["_state"] = {}

  def __setstate__(self, state):
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slotstate)
      state = state[0]
    self.__dict__["_state"] = dict(state) if isinstance(state, dict) else {"_": state}


def _script_class(qualname):
  return type(qualname.rsplit(".", 1)[-1], (ScriptObject,), {"_torch_qualname": qualname})


def _identity_list(x):
  return list(x)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _identity_list,
    ("torch.jit._pickle", "build_doublelist"): _identity_list,
    ("torch.jit._pickle", "build_boollist"): _identity_list,
    ("torch.jit._pickle", "build_tensorlist"): _identity_list,
    ("torch.jit._pickle", "restore_type_tag"): lambda x, tag: x,
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickler that resolves only tensor-rebuild globals; TorchScript classes become inert."""

  def __init__(self, fileobj, read_record):
    super().__init__(fileobj)
    self._read_record = read_record
    self._storages = {}

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(_STORAGE_DTYPES[name])
    if module == "torch" and name in _TORCH_DTYPES:
      return _TorchDtype(name)
    if module.startswith("__torch__"):
      return _script_class(f"{module}.{name}")
    raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a checkpoint")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    _, stype, key, _location, _numel = pid[:5]
    key = str(key)
    if key not in self._storages:
      dtype = stype.dtype if isinstance(stype, _StorageType) else (
          _TORCH_DTYPES[stype.name] if isinstance(stype, _TorchDtype) else None)
      if dtype is None:
        raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
      self._storages[key] = _Storage(self._read_record(key), dtype)
    return self._storages[key]


def _flatten_script(obj, prefix, out, seen):
  if id(obj) in seen:
    return
  seen.add(id(obj))
  for k, v in obj._state.items():
    name = f"{prefix}{k}"
    if isinstance(v, np.ndarray):
      out[name] = v
    elif isinstance(v, ScriptObject):
      _flatten_script(v, name + ".", out, seen)


def _read_zip_numpy(path):
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
    pkls = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkls:
      raise CheckpointError(f"{path}: zip archive without data.pkl; not a PyTorch checkpoint")
    pkl = min(pkls, key=len)
    root = pkl[: -len("data.pkl")]

    def read_record(key):
      try:
        return zf.read(f"{root}data/{key}")
      except KeyError as e:
        raise CheckpointError(f"{path}: storage data/{key} missing (truncated file?)") from e

    obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl)), read_record).load()
  if isinstance(obj, ScriptObject):
    out = {}
    _flatten_script(obj, "", out, set())
    return out
  return obj


def _read_safetensors(path):
  dtypes = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bfloat16",
            "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
            "BOOL": np.bool_}
  with open(path, "rb") as f:
    data = f.read()
  if len(data) < 8:
    raise CheckpointError(f"{path}: too short for a safetensors file")
  (n,) = struct.unpack("<Q", data[:8])
  if 8 + n > len(data):
    raise CheckpointError(f"{path}: safetensors header runs past the end of the file (truncated?)")
  header = json.loads(data[8:8 + n])
  body = memoryview(data)[8 + n:]
  out = {}
  for k, info in header.items():
    if k == "__metadata__":
      continue
    a, b = info["data_offsets"]
    if b > len(body):
      raise CheckpointError(f"{path}: tensor {k} runs past the end of the file (truncated?)")
    dt = dtypes[info["dtype"]]
    if isinstance(dt, str):
      arr = _bf16_to_f32(np.frombuffer(body[a:b], np.uint16))
    else:
      arr = np.frombuffer(body[a:b], dt)
    out[k] = arr.reshape(info["shape"]).copy()
  return out


def _read_torch(path):
  import torch  # pylint: disable=import-outside-toplevel
  is_script = False
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as zf:
      is_script = any(n.endswith("/constants.pkl") for n in zf.namelist())
  try:
    if is_script:  # TorchScript archive (OpenAI's releases): torch.load(weights_only) refuses it.
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "torch.jit.load is deprecated"
        return torch.jit.load(path, map_location="cpu").state_dict()
    return torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"{path}: torch cannot read this file: {e}") from e


def _to_numpy_tree(obj):
  if isinstance(obj, np.ndarray):
    return obj
  if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
    t = obj.detach().cpu()
    import torch  # pylint: disable=import-outside-toplevel
    if t.dtype == torch.bfloat16:
      t = t.float()
    return t.numpy().copy()
  if isinstance(obj, dict):
    return {k: _to_numpy_tree(v) for k, v in obj.items()}
  return obj


def _extract_state_dict(obj, path):
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
  out = {}
  for k, v in obj.items():
    if not isinstance(v, np.ndarray):
      continue
    if k.startswith("module."):
      k = k[len("module."):]
    out[k] = v
  return out


def read_state_dict(path: str, use_torch: bool | None = None) -> dict:
  """Read a checkpoint file into a flat ``{key: numpy array}`` (dtypes as stored).

  ``use_torch=None`` uses torch when it is importable, else the torch-free reader; ``False`` forces
  the torch-free reader (no code from the file is executed); ``True`` requires torch.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(path)
  if path.endswith(".safetensors"):
    return _read_safetensors(path)
  if use_torch is None:
    try:
      import torch  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
      use_torch = True
    except ImportError:
      use_torch = False
  try:
    if use_torch:
      obj = _to_numpy_tree(_read_torch(path))
    else:
      if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a zip archive (truncated, or a legacy pre-1.6 torch pickle, which needs "
            "torch installed)")
      obj = _read_zip_numpy(path)
  except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, struct.error) as e:
    raise CheckpointError(f"{path}: cannot read checkpoint (truncated or corrupt?): {e}") from e
  return _extract_state_dict(obj, path)
