"""Checkpoint reader safety: bounds checks, dtype rules, hostile archives and a fuzz run.

The fuzz test mutates small valid checkpoints (torch.save state dict, TorchScript archive,
safetensors) and loads every mutant with ``featcon.clip.load`` in a subprocess
(``tests/clip/load_cases.py``): each must end in a loaded encoder or a ``CheckpointError`` naming
the file, never in a crash, a hang or another exception. ``FEATCON_FUZZ_CASES`` (default 300) sets
the number of mutants, ``FEATCON_FUZZ_SEED`` (default 0) the seed, ``FEATCON_FUZZ_REPORT`` a path
for a JSON summary; e.g. ``FEATCON_FUZZ_CASES=5000 python -m pytest -q -s
tests/clip/test_checkpoint_safety.py -k fuzz``.
"""
import collections
import io
import json
import os
import pickle
import pickletools
import re
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from featcon import clip  # pylint: disable=wrong-import-position
from featcon import models  # pylint: disable=wrong-import-position
from featcon.clip import convert  # pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ_CASES = int(os.environ.get("FEATCON_FUZZ_CASES", "300"))
FUZZ_SEED = int(os.environ.get("FEATCON_FUZZ_SEED", "0"))
CASE_TIMEOUT_S = 20.0
TINY_VIT = dict(patch_size=8, width=16, layers=1, output_dim=8, image_size=16)


# ----------------------------------------------------------------------------- base files


def tiny_state_dict(seed=0):
  """A tiny CLIP ViT image tower in OpenAI's torch layout (``visual.*``), plus an int64 extra.

  Built from the Flax tower's own variable shapes, so ``clip.load`` infers and fits it.
  """
  module = clip.create_vit(**TINY_VIT)
  rng = np.random.default_rng(seed)
  sd = collections.OrderedDict()
  shapes = convert._expected_shapes(module)  # pylint: disable=protected-access
  for full, shape in sorted(shapes.items()):
    key = convert._torch_key(full)  # pylint: disable=protected-access
    tshape = convert._torch_layout(full, shape)  # pylint: disable=protected-access
    arr = rng.standard_normal(tshape).astype(np.float32)
    if full[0] == "batch_stats" and full[-1] == "var":
      arr = np.abs(arr) + 0.5
    sd["visual." + key] = torch.from_numpy(arr)
  sd["visual.conv1.weight"] = sd["visual.conv1.weight"].half()  # fp16 like OpenAI's releases
  sd["input_resolution"] = torch.tensor(TINY_VIT["image_size"])  # int64 scalar, ignored
  return sd


class _Node(torch.nn.Module):
  def forward(self, x):
    return x


def tiny_module(sd):
  """An nn.Module tree whose parameters are ``sd`` (attribute paths = keys)."""
  root = _Node()
  for key, value in sd.items():
    *parts, leaf = key.split(".")
    node = root
    for p in parts:
      if not hasattr(node, p):
        node.add_module(p, _Node())
      node = getattr(node, p)
    if value.is_floating_point():
      node.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))
    else:
      node.register_buffer(leaf, value.clone())
  return root


def write_bases(out):
  """Write state_dict.pt, wrapped.pt (``{"state_dict": ...}``, ``module.`` keys), script.pt
  (TorchScript), legacy.pt (pre-1.6 format) and st.safetensors into ``out``; returns
  (state dict, {kind: path})."""
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
  sd = tiny_state_dict()
  module = tiny_module(sd)
  paths = {}
  paths["state_dict"] = os.path.join(out, "state_dict.pt")
  torch.save(module.state_dict(), paths["state_dict"])  # OrderedDict with _metadata
  paths["wrapped"] = os.path.join(out, "wrapped.pt")
  torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}},
             paths["wrapped"])
  paths["script"] = os.path.join(out, "script.pt")
  torch.jit.save(torch.jit.script(module), paths["script"])
  paths["legacy"] = os.path.join(out, "legacy.pt")
  torch.save(module.state_dict(), paths["legacy"], _use_new_zipfile_serialization=False)
  paths["safetensors"] = os.path.join(out, "st.safetensors")
  save_file({k: v.numpy() for k, v in sd.items() if k.startswith("visual.")},
            paths["safetensors"])
  return sd, paths


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
  return write_bases(str(tmp_path_factory.mktemp("bases")))


def test_bases_load_and_match(bases):
  sd, paths = bases
  for kind, path in paths.items():
    got = clip.read_state_dict(path)
    want = {k: v.numpy() for k, v in sd.items()}
    if kind == "safetensors":
      want.pop("input_resolution")
    assert set(got) == set(want), kind
    for k in want:
      assert got[k].dtype == want[k].dtype, (kind, k)
      np.testing.assert_array_equal(got[k], want[k], err_msg=f"{kind} {k}")
    enc = clip.load(path)
    assert enc.config == clip.ViTConfig(**TINY_VIT, heads=1), kind


# ----------------------------------------------------------------------------- targeted checks


def _zip_members(path):
  with zipfile.ZipFile(path) as zf:
    return {n: zf.read(n) for n in zf.namelist()}


def _write_zip(path, members):
  with zipfile.ZipFile(path, "w") as zf:
    for n, data in members.items():
      zf.writestr(n, data)


def _int_ops(pkl):
  """(start, end, value) of every integer opcode in a pickle."""
  ops = list(pickletools.genops(pkl))
  out = []
  for (op, arg, pos), nxt in zip(ops, ops[1:] + [(None, None, len(pkl))]):
    if op.name in ("BININT", "BININT1", "BININT2", "LONG1") and isinstance(arg, int):
      out.append((pos, nxt[2], arg))
  return out


def _encode_int(v):
  return pickle.dumps(v, protocol=2)[2:-1]


def _tensor_pickle(tmp_path, values, dtype=torch.float32):
  """A torch.save zip of {"w": tensor}; returns (path, members, data.pkl name)."""
  p = tmp_path / "one.pt"
  torch.save({"w": torch.tensor(values, dtype=dtype)}, p)
  members = _zip_members(p)
  pkl = next(n for n in members if n.endswith("data.pkl"))
  return p, members, pkl


def _with_tensor_args(members, pkl, offset, size, stride):
  """Rewrite the (offset, size, stride) of the single tensor in ``pkl``."""
  data = members[pkl]
  ops = list(pickletools.genops(data))
  names = [op.name for op, _, _ in ops]
  start = names.index("BINPERSID") + 1  # the storage, then offset, (size), (stride)
  end = next(i for i in range(start, len(ops)) if names[i] in ("NEWFALSE", "NEWTRUE"))
  new = (_encode_int(offset) + b"(" + b"".join(_encode_int(s) for s in size) + b"t" + b"(" +
         b"".join(_encode_int(s) for s in stride) + b"t")
  members = dict(members)
  members[pkl] = data[:ops[start][2]] + new + data[ops[end][2]:]
  return members


@pytest.mark.parametrize("offset,size,stride,match", [
    (0, (1000,), (1,), "past the end"),          # size larger than storage (segfaulted before)
    (1, (4,), (1,), "past the end"),             # one element over: silent heap read before
    (0, (2, 3), (3, 1), "past the end"),
    (0, (2 ** 40,), (0,), "over the limit"),     # MemoryError before
    (0, (-1,), (1,), "non-negative"),
    (0, (2,), (-1,), "non-negative"),
    (-1, (2,), (1,), "non-negative"),
    (0, (2 ** 64,), (1,), "past the end"),
])
def test_tensor_bounds_are_checked(tmp_path, offset, size, stride, match):
  p, members, pkl = _tensor_pickle(tmp_path, [1.0, 2.0, 3.0, 4.0])
  bad = tmp_path / "bad.pt"
  _write_zip(bad, _with_tensor_args(members, pkl, offset, size, stride))
  with pytest.raises(clip.CheckpointError, match=match) as e:
    clip.read_state_dict(bad)
  assert "bad.pt" in str(e.value) and "'w'" in str(e.value)
  good = tmp_path / "good.pt"  # the rewriting itself is sound: a valid view loads exactly
  _write_zip(good, _with_tensor_args(members, pkl, 1, (3,), (1,)))
  np.testing.assert_array_equal(clip.read_state_dict(good)["w"], [2.0, 3.0, 4.0])
  del p


def test_strided_views_match_torch(tmp_path):
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  views = {"t": base.t(), "s": base[1:, ::2], "e": base[0].expand(3, 6), "b": base.bfloat16()}
  p = tmp_path / "views.pt"
  torch.save(views, p)
  got = clip.read_state_dict(p)
  for k, v in views.items():
    np.testing.assert_array_equal(got[k], v.float().numpy(), err_msg=k)
  assert got["b"].dtype == np.float32


def test_storage_member_size_and_presence(tmp_path):
  p, members, pkl = _tensor_pickle(tmp_path, [1.0, 2.0, 3.0, 4.0])
  data_key = next(n for n in members if "/data/" in n)
  short = dict(members, **{data_key: members[data_key][:8]})
  _write_zip(tmp_path / "short.pt", short)
  with pytest.raises(clip.CheckpointError, match="holds 8 bytes"):
    clip.read_state_dict(tmp_path / "short.pt")
  gone = {n: d for n, d in members.items() if n != data_key}
  _write_zip(tmp_path / "gone.pt", gone)
  with pytest.raises(clip.CheckpointError, match="missing"):
    clip.read_state_dict(tmp_path / "gone.pt")
  del p, pkl


def test_state_dict_variants_match_torch(tmp_path):
  m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
  sd = m.state_dict()
  assert hasattr(sd, "_metadata")
  for name, obj in [("plain", sd), ("wrapped", {"state_dict": sd, "step": 1}),
                    ("prefixed", {"module." + k: v for k, v in sd.items()})]:
    p = tmp_path / f"{name}.pth"
    torch.save(obj, p)
    got = clip.read_state_dict(p)
    assert set(got) == set(sd), name
    for k, v in sd.items():
      assert got[k].dtype == v.numpy().dtype
      np.testing.assert_array_equal(got[k], v.numpy())


def test_legacy_format_matches_torch(tmp_path):
  """Pre-1.6 (non-zip) torch.save files: same restricted unpickler, storages after the pickle."""
  m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  sd = dict(m.state_dict(), t=base.t(), s=base[1:, ::2], h=torch.ones(3).half())
  p = tmp_path / "legacy.pth"
  torch.save({"state_dict": sd}, p, _use_new_zipfile_serialization=False)
  assert not zipfile.is_zipfile(p)
  got = clip.read_state_dict(p)
  want = torch.load(p, weights_only=True)["state_dict"]
  assert set(got) == set(want)
  for k, v in want.items():
    assert got[k].dtype == v.numpy().dtype, k
    np.testing.assert_array_equal(got[k], v.numpy(), err_msg=k)
  data = p.read_bytes()
  for cut in (len(data) - 3, len(data) // 2, 40):
    (tmp_path / "cut.pth").write_bytes(data[:cut])
    with pytest.raises(clip.CheckpointError, match="cut.pth"):
      clip.read_state_dict(tmp_path / "cut.pth")


def _safetensors(header, body):
  h = json.dumps(header).encode()
  return struct.pack("<Q", len(h)) + h + body


@pytest.mark.parametrize("dtype,np_dtype", [("I32", np.int32), ("BOOL", np.bool_),
                                            ("U8", np.uint8)])
def test_non_float_weights_refused_by_name(bases, tmp_path, dtype, np_dtype):
  sd, _ = bases
  arrays = {k: v.float().numpy() for k, v in sd.items() if k.startswith("visual.")}
  arrays["visual.ln_post.weight"] = np.ones(arrays["visual.ln_post.weight"].shape, np_dtype)
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
  p = tmp_path / f"ints_{dtype}.safetensors"
  save_file(arrays, str(p))
  assert clip.read_state_dict(p)["visual.ln_post.weight"].dtype == np_dtype
  with pytest.raises(clip.CheckpointError, match="not floating point") as e:
    clip.load(p)
  assert p.name in str(e.value) and "ln_post.weight" in str(e.value)


@pytest.mark.parametrize("entry,match", [
    ({"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}, "F8_E4M3"),
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "needs 12 bytes"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}, "data_offsets"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "non-negative"),
    ({"dtype": "F32", "shape": [2]}, "exactly dtype, shape, data_offsets"),
])
def test_safetensors_header_checks_name_file_and_key(tmp_path, entry, match):
  p = tmp_path / "h.safetensors"
  p.write_bytes(_safetensors({"layer.w": entry}, np.ones(2, np.float32).tobytes()))
  with pytest.raises(clip.CheckpointError, match=match) as e:
    clip.read_state_dict(p)
  assert "h.safetensors" in str(e.value) and "layer.w" in str(e.value)


@pytest.mark.parametrize("raw,match", [
    (struct.pack("<Q", 5) + b"{nope", "not valid JSON"),
    (struct.pack("<Q", 2) + b"[]", "not an object"),
    (struct.pack("<Q", 2 ** 62) + b"{}", "past the end"),
    (struct.pack("<Q", 20000) + b"[" * 10000 + b"]" * 10000, "not valid JSON"),
    (struct.pack("<Q", 16) + b'{"a": 1, "a": 2}', "duplicate"),
])
def test_safetensors_bad_headers(tmp_path, raw, match):
  p = tmp_path / "bad.safetensors"
  p.write_bytes(raw)
  with pytest.raises(clip.CheckpointError, match=match) as e:
    clip.read_state_dict(p)
  assert "bad.safetensors" in str(e.value)


def test_safetensors_reader_matches_package_on_all_dtypes(tmp_path):
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  arrays = {f"a_{np.dtype(d).name}": (rng.standard_normal((3, 5)) * 50).astype(d)
            for d in [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
                      np.uint8, np.bool_]}
  save_file(arrays, str(tmp_path / "all.safetensors"))
  got = clip.read_state_dict(tmp_path / "all.safetensors")
  for k, v in arrays.items():
    assert got[k].dtype == v.dtype, k
    np.testing.assert_array_equal(got[k], v, err_msg=k)


# ----------------------------------------------------------------------------- hostile archives


class _Reduce:
  def __init__(self, fn, *args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return self.fn, self.args


def _hostile_pickles(marker):
  """(name, pickle bytes) whose unpickling with the standard unpickler writes ``marker``."""
  import builtins  # pylint: disable=import-outside-toplevel
  touch = f"open({str(marker)!r}, 'w').close()"
  return [
      ("os_system", pickle.dumps({"w": _Reduce(os.system, f"touch {marker}")}, protocol=2)),
      ("exec", pickle.dumps({"w": _Reduce(builtins.exec, touch)}, protocol=2)),
      ("eval", pickle.dumps({"w": _Reduce(builtins.eval, touch)}, protocol=2)),
      ("subprocess", pickle.dumps({"w": _Reduce(subprocess.call, ["touch", str(marker)])},
                                  protocol=2)),
      ("stack_global_p4", pickle.dumps({"w": _Reduce(os.system, f"touch {marker}")}, protocol=4)),
      ("hook_in_tensor", pickle.dumps(_Reduce(dict, [("w", _Reduce(os.system,
                                                                    f"touch {marker}"))]),
                                      protocol=2)),
  ]


def _script_payload(path, marker):
  """A real ``torch.jit.save`` archive whose TorchScript ``__setstate__`` writes ``marker``."""

  class Payload(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.w = torch.nn.Parameter(torch.ones(2))
      self.path = str(marker)

    def forward(self, x):
      return x * self.w

    @torch.jit.export
    def __getstate__(self):
      return (self.w, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
      self.w = state[0]
      self.path = state[1]
      self.training = state[2]
      t = torch.from_file(self.path, True, 8, dtype=torch.uint8)
      t.fill_(65)
      self.w = self.w + t[:2].float() * 0.0

  torch.jit.save(torch.jit.script(Payload()), str(path))


def _hostile_files(tmp_path):
  """{file: marker it would write}: zips with __reduce__ payloads, a TorchScript payload, a legacy
  pickle payload and a pickle named .safetensors."""
  files = {}
  names = [name for name, _ in _hostile_pickles(tmp_path / "marker")]
  for name in names:
    marker = tmp_path / f"marker_{name}"
    data = dict(_hostile_pickles(marker))[name]
    p = tmp_path / f"hostile_{name}.pt"
    _write_zip(p, {"archive/data.pkl": data, "archive/version": b"3\n"})
    files[p] = marker
  marker = tmp_path / "marker_torchscript"
  _script_payload(tmp_path / "hostile_torchscript.pt", marker)
  files[tmp_path / "hostile_torchscript.pt"] = marker
  marker = tmp_path / "marker_legacy"
  p = tmp_path / "hostile_legacy.pt"
  torch.save({"w": _Reduce(os.system, f"touch {marker}")}, p, _use_new_zipfile_serialization=False)
  files[p] = marker
  marker = tmp_path / "marker_named_safetensors"
  p = tmp_path / "hostile.safetensors"
  p.write_bytes(pickle.dumps(_Reduce(os.system, f"touch {marker}")))
  files[p] = marker
  return files


_STANDARD_LOADS = """
import pickle, sys, zipfile, torch
for path in sys.argv[1:]:
  try:
    if "torchscript" in path:
      torch.jit.load(path)
    elif zipfile.is_zipfile(path):
      pickle.loads(zipfile.ZipFile(path).read("archive/data.pkl"))
    elif path.endswith(".safetensors"):
      pickle.loads(open(path, "rb").read())
    else:
      torch.load(path, weights_only=False)
  except Exception:
    pass
"""


def _standard_loads_write_markers(files):
  """Positive control: the standard (unsafe) loaders do run each payload; {name: marker written}."""
  subprocess.run([sys.executable, "-c", _STANDARD_LOADS] + [str(p) for p in files],
                 capture_output=True, check=False, cwd=ROOT, timeout=300)
  return {p.name: m.exists() for p, m in files.items()}


def test_hostile_archives_execute_nothing(tmp_path):
  files = _hostile_files(tmp_path)
  results = _run_cases([str(p) for p in files], tmp_path)
  for (path, marker), (outcome, msg) in zip(files.items(), results):
    assert not marker.exists(), f"{path.name}: payload ran"
    assert outcome == "CheckpointError", (path.name, outcome, msg)
    assert path.name in msg
  controls = _standard_loads_write_markers(files)
  assert all(controls.values()), controls  # every payload is live under the standard loaders


def test_distill_teacher_path_executes_nothing(tmp_path):
  marker = tmp_path / "marker_teacher"
  _script_payload(tmp_path / "teacher.pt", marker)
  with pytest.raises(clip.CheckpointError, match="teacher.pt"):
    models.load_pretrained("RN50", str(tmp_path / "teacher.pt"))
  assert not marker.exists()


# ----------------------------------------------------------------------------- fuzzing


def _run_cases(paths, workdir):
  """Load every path in a subprocess (tests/clip/load_cases.py); [(outcome, message)].

  A case that kills the interpreter is recorded as ``crash:<returncode>`` (``hang`` when the
  per-case timeout fired) and the remaining cases are re-run in a fresh process.
  """
  manifest = os.path.join(str(workdir), "manifest.txt")
  with open(manifest, "w") as f:
    f.write("\n".join(paths))
  results, start = {}, 0
  while start < len(paths):
    proc = subprocess.run(
        [sys.executable, "-m", "tests.clip.load_cases", manifest, str(start), str(CASE_TIMEOUT_S)],
        capture_output=True, text=True, check=False, cwd=ROOT,
        timeout=60 + CASE_TIMEOUT_S * (len(paths) - start))
    last = None
    for line in proc.stdout.splitlines():
      if line.startswith("start "):
        last = int(line.split()[1])
      elif line.startswith("done "):
        _, i, outcome, *msg = line.split(" ", 3)
        results[int(i)] = (outcome, msg[0] if msg else "")
    if last is None or last in results:  # finished (or died before the first case)
      if len(results) < len(paths) - start and last is None:
        raise RuntimeError(f"runner failed before any case: {proc.stderr[-2000:]}")
      break
    results[last] = ("hang" if "Timeout" in proc.stderr else f"crash:{proc.returncode}",
                     proc.stderr[-300:])
    start = last + 1
  return [results[i] for i in range(len(paths))]


_DTYPE_NAMES = ["Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
                "Bool", "ComplexFloat", "QInt8", "Untyped"]
_HOSTILE_INTS = [-1, -2 ** 31, 0, 1, 2, 3, 7, 255, 2 ** 31 - 1, 2 ** 32, 2 ** 40, 2 ** 62, 2 ** 63,
                 2 ** 64 + 1, -(2 ** 63)]
_ST_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "F8_E5M2",
              "U16", "C64", "", "f32"]


def _mutate_bytes(data, rng):
  kind = rng.choice(["flip", "truncate", "append", "overwrite", "zero"])
  b = bytearray(data)
  if kind == "flip":
    for _ in range(int(rng.integers(1, 9))):
      b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
  elif kind == "truncate":
    b = b[: int(rng.integers(len(b)))]
  elif kind == "append":
    b += rng.bytes(int(rng.integers(1, 256)))
  elif kind == "overwrite":
    i = int(rng.integers(len(b)))
    n = int(rng.integers(1, 64))
    b[i:i + n] = rng.bytes(len(b[i:i + n]))
  else:
    b = bytearray()
  return "bytes_" + kind, bytes(b)


def _mutate_zip(path, rng):
  """Mutate one member of a torch zip archive and rewrite it with valid CRCs."""
  members = _zip_members(path)
  pkl = next(n for n in members if n.endswith("/data.pkl") and n.count("/") == 1)
  data = members[pkl]
  storages = [n for n in members if re.search(r"/data/\d+$", n)]
  kind = rng.choice(["int", "int", "int", "dtype", "string", "pkl_flip", "pkl_truncate",
                     "member_drop", "member_resize", "second_root"])
  if kind == "int":
    ops = _int_ops(data)
    for _ in range(int(rng.integers(1, 3))):
      a, e, v = ops[int(rng.integers(len(ops)))]
      new = _HOSTILE_INTS[int(rng.integers(len(_HOSTILE_INTS)))] if rng.random() < 0.6 else (
          v + int(rng.integers(-3, 4)))
      data = data[:a] + _encode_int(new) + data[e:]
      ops = _int_ops(data)
  elif kind == "dtype":
    found = list(re.finditer(rb"ctorch\n(\w+)Storage\n", data))
    m = found[int(rng.integers(len(found)))]
    name = _DTYPE_NAMES[int(rng.integers(len(_DTYPE_NAMES)))]
    repl = b"cos\nsystem\n" if rng.random() < 0.1 else f"ctorch\n{name}Storage\n".encode()
    data = data[:m.start()] + repl + data[m.end():]
  elif kind == "string":
    found = [(pos, arg) for op, arg, pos in pickletools.genops(data)
             if op.name == "BINUNICODE"]
    pos, arg = found[int(rng.integers(len(found)))]
    end = pos + 5 + len(arg.encode())
    new = ["0", "1", "99", "../data.pkl", "", "x" * 100, "visual.proj", "__class__"][
        int(rng.integers(8))]
    data = data[:pos] + pickle.dumps(new, protocol=2)[2:-1] + data[end:]
  elif kind == "pkl_flip":
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
      b[int(rng.integers(len(b)))] = int(rng.integers(256))
    data = bytes(b)
  elif kind == "pkl_truncate":
    data = data[: int(rng.integers(len(data)))]
  elif kind == "member_drop":
    members.pop(storages[int(rng.integers(len(storages)))])
  elif kind == "member_resize":
    n = storages[int(rng.integers(len(storages)))]
    cut = int(rng.integers(-16, 17))
    members[n] = members[n][:cut] if cut < 0 else members[n] + b"\0" * cut
  elif kind == "second_root":
    members["other/data.pkl"] = data
  if kind not in ("member_drop", "member_resize"):
    members[pkl] = data
  out = io.BytesIO()
  with zipfile.ZipFile(out, "w") as zf:
    for n, d in members.items():
      zf.writestr(n, d)
  return "zip_" + kind, out.getvalue()


def _mutate_legacy(path, rng):
  """Mutate the object pickle (4th of 5) or the storage bytes of a legacy torch.save file."""
  with open(path, "rb") as f:
    data = f.read()
  bounds, pos = [], 0
  for _ in range(5):
    end = pos + max(p for _, _, p in pickletools.genops(data[pos:])) + 1
    bounds.append((pos, end))
    pos = end
  a, e = bounds[3]
  pkl, head, tail = data[a:e], data[:a], data[e:]
  kind = rng.choice(["int", "int", "pkl_flip", "dtype", "tail_cut", "tail_grow"])
  if kind == "int":
    ops = _int_ops(pkl)
    i, j, _ = ops[int(rng.integers(len(ops)))]
    pkl = pkl[:i] + _encode_int(_HOSTILE_INTS[int(rng.integers(len(_HOSTILE_INTS)))]) + pkl[j:]
  elif kind == "pkl_flip":
    b = bytearray(pkl)
    b[int(rng.integers(len(b)))] = int(rng.integers(256))
    pkl = bytes(b)
  elif kind == "dtype":
    found = list(re.finditer(rb"ctorch\n(\w+)Storage\n", pkl))
    m = found[int(rng.integers(len(found)))]
    name = _DTYPE_NAMES[int(rng.integers(len(_DTYPE_NAMES)))]
    pkl = pkl[:m.start()] + f"ctorch\n{name}Storage\n".encode() + pkl[m.end():]
  elif kind == "tail_cut":
    tail = tail[: int(rng.integers(len(tail)))]
  else:
    tail = tail + rng.bytes(int(rng.integers(1, 64)))
  return "legacy_" + kind, head + pkl + tail


def _mutate_safetensors(path, rng):
  with open(path, "rb") as f:
    raw = f.read()
  (n,) = struct.unpack("<Q", raw[:8])
  header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
  keys = [k for k in header if k != "__metadata__"]
  key = keys[int(rng.integers(len(keys)))]
  entry = header[key]
  kind = rng.choice(["dtype", "shape", "offsets", "field", "header_len", "header_text",
                     "not_object"])
  if kind == "dtype":
    entry["dtype"] = _ST_DTYPES[int(rng.integers(len(_ST_DTYPES)))]
  elif kind == "shape":
    choice = int(rng.integers(5))
    shape = list(entry["shape"])
    if choice == 0 and shape:
      shape[int(rng.integers(len(shape)))] = _HOSTILE_INTS[int(rng.integers(len(_HOSTILE_INTS)))]
    elif choice == 1:
      shape = shape + [1]
    elif choice == 2:
      shape = shape[::-1]
    elif choice == 3:
      shape = [float(s) for s in shape] or [1.5]
    else:
      shape = "abc"
    entry["shape"] = shape
  elif kind == "offsets":
    a, b = entry["data_offsets"]
    entry["data_offsets"] = [[b, a], [a, b + 4], [a - 4, b], [a, 2 ** 64], [-1, b], [a], "x"][
        int(rng.integers(7))]
  elif kind == "field":
    if rng.random() < 0.5:
      entry.pop(["dtype", "shape", "data_offsets"][int(rng.integers(3))])
    else:
      entry["extra"] = 1
  text = json.dumps(header).encode()
  if kind == "header_text":
    b = bytearray(text)
    for _ in range(int(rng.integers(1, 4))):
      b[int(rng.integers(len(b)))] = int(rng.integers(256))
    text = bytes(b)
  elif kind == "not_object":
    text = [b"[]", b"null", b"1", b'"s"', b"[" * 5000 + b"]" * 5000][int(rng.integers(5))]
  length = len(text)
  if kind == "header_len":
    length = [0, 1, length - 1, length + 1, 2 ** 63, 2 ** 64 - 1, len(raw)][int(rng.integers(7))]
  return "st_" + kind, struct.pack("<Q", length) + text + body


def make_mutants(paths, n, seed, out):
  """``n`` mutated files under ``out`` (round-robin over base kinds); [(path, base, kind)]."""
  rng = np.random.default_rng(seed)
  kinds = sorted(paths)
  cases = []
  for i in range(n):
    base = kinds[i % len(kinds)]
    path = paths[base]
    if rng.random() < 0.3:
      with open(path, "rb") as f:
        kind, data = _mutate_bytes(f.read(), rng)
    elif base == "safetensors":
      kind, data = _mutate_safetensors(path, rng)
    elif base == "legacy":
      kind, data = _mutate_legacy(path, rng)
    else:
      kind, data = _mutate_zip(path, rng)
    ext = ".safetensors" if base == "safetensors" else ".pt"
    p = os.path.join(out, f"case{i:05d}_{base}{ext}")
    with open(p, "wb") as f:
      f.write(data)
    cases.append((p, base, kind))
  return cases


def test_fuzz_mutants_load_or_raise_checkpoint_error(bases, tmp_path):
  _, paths = bases
  cases = make_mutants(paths, FUZZ_CASES, FUZZ_SEED, str(tmp_path))
  results = _run_cases([p for p, _, _ in cases], tmp_path)
  counts = collections.Counter(outcome for outcome, _ in results)
  by_kind = collections.defaultdict(collections.Counter)
  for (_, base, kind), (outcome, _) in zip(cases, results):
    by_kind[f"{base}/{kind}"][outcome] += 1
  summary = {"cases": len(cases), "seed": FUZZ_SEED, "outcomes": dict(counts),
             "by_mutation": {k: dict(v) for k, v in sorted(by_kind.items())}}
  print(json.dumps(summary, indent=1))
  if os.environ.get("FEATCON_FUZZ_REPORT"):
    with open(os.environ["FEATCON_FUZZ_REPORT"], "w") as f:
      json.dump(summary, f, indent=1)
  bad = [(os.path.basename(p), kind, outcome, msg) for (p, _, kind), (outcome, msg)
         in zip(cases, results) if outcome not in ("loaded", "CheckpointError")]
  assert not bad, bad[:10]
  unnamed = [(os.path.basename(p), msg) for (p, _, _), (outcome, msg) in zip(cases, results)
             if outcome == "CheckpointError" and os.path.basename(p) not in msg]
  assert not unnamed, unnamed[:10]
  # Both outcomes occur: the mutants are neither all harmless nor all refused.
  assert counts["loaded"] >= 0.05 * len(cases) and counts["CheckpointError"] >= 0.3 * len(cases)


def test_zip_whose_end_record_breaks_is_zipfile(tmp_path):
  """``zipfile.is_zipfile`` raises on a ZIP64 locator naming several disks; still a CheckpointError."""
  p, members, _ = _tensor_pickle(tmp_path, [1.0])
  data = p.read_bytes()
  locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 2)
  bad = tmp_path / "disks.pt"
  bad.write_bytes(data[:-22] + locator + data[-22:])
  with pytest.raises(clip.CheckpointError, match="disks.pt"):
    clip.read_state_dict(bad)
  del members
