"""Checkpoint reading: OpenAI TorchScript layout, torch.save, safetensors, errors."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import jax.numpy as jnp  # pylint: disable=wrong-import-position

from featcon import clip  # pylint: disable=wrong-import-position
from tests.clip import reference  # pylint: disable=wrong-import-position

FILES = ["rn_openai.pt", "vit_openai.pt", "rn_state_dict.pt", "vit_state_dict.pt",
         "rn.safetensors", "vit.safetensors"]


def _torch_reference(path):
  """The same file read by torch itself (trusted fixtures only): {key: numpy array}."""
  name = str(path)
  if name.endswith(".safetensors"):
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    return load_file(name)
  if name.endswith("_openai.pt"):  # TorchScript: torch.load(weights_only=True) refuses it
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)
      sd = torch.jit.load(name, map_location="cpu").state_dict()
  else:
    sd = torch.load(name, map_location="cpu", weights_only=True)
  return {k: v.numpy() for k, v in sd.items()}


@pytest.mark.parametrize("fname", FILES)
def test_reader_matches_torch(fixtures_dir, fname):
  """The restricted reader returns exactly what torch / safetensors load (keys, dtypes, bits)."""
  a = clip.read_state_dict(fixtures_dir / fname)
  b = _torch_reference(fixtures_dir / fname)
  assert set(a) == set(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_openai_layout_has_fp16_and_int64_extras(fixtures_dir):
  sd = clip.read_state_dict(fixtures_dir / "rn_openai.pt")
  assert sd["visual.conv1.weight"].dtype == np.float16
  assert sd["visual.bn1.running_var"].dtype == np.float32
  assert sd["input_resolution"].dtype == np.int64 and int(sd["input_resolution"]) == 32
  assert "transformer.resblocks.0.attn.in_proj_weight" in sd  # text tower present, ignored


@pytest.mark.parametrize("kind", ["rn", "vit"])
@pytest.mark.parametrize("suffix", ["_openai.pt", "_state_dict.pt", ".safetensors"])
def test_loaded_model_matches_pytorch(fixtures_dir, kind, suffix):
  from tests.clip import make_fixtures  # pylint: disable=import-outside-toplevel
  path = fixtures_dir / f"{kind}{suffix}"
  enc = clip.load(path)
  res = make_fixtures.TINY[kind]["image_size"]
  assert enc.config.image_size == res
  x = np.random.default_rng(0).standard_normal((2, res, res, 3)).astype(np.float32)
  if suffix == "_openai.pt":
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)
      ref_model = torch.jit.load(str(path)).float()  # the archive itself, upcast
    with torch.no_grad():
      ref = ref_model.encode_image(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  else:
    m = make_fixtures.build(kind, seed=0 if kind == "rn" else 10).visual
    if suffix == "_state_dict.pt":
      make_fixtures.to_fp16_like_openai(m)
      m.float()
    ref, _ = reference.torch_forward(m, x)
  emb = np.asarray(enc(jnp.asarray(x)))
  assert emb.shape == ref.shape
  assert reference.rel_err(emb, ref) <= 1e-5


def test_load_no_torch_in_subprocess(fixtures_dir):
  """featcon.clip imports and loads a TorchScript archive with torch made unimportable."""
  code = (
      "import sys; sys.modules['torch'] = None\n"
      "import featcon.clip as c\n"
      f"e = c.load({str(fixtures_dir / 'vit_openai.pt')!r})\n"
      "import numpy as np\n"
      "print(e.config, e(np.zeros((1, 32, 32, 3), np.float32)).shape)\n"
      "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  assert out.returncode == 0, out.stderr
  assert "(1, 32)" in out.stdout


def test_import_does_not_import_torch():
  code = "import sys, featcon.clip; assert 'torch' not in sys.modules, 'torch imported'"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  assert out.returncode == 0, out.stderr


def test_truncated_file_gives_clear_error(fixtures_dir):
  with pytest.raises(clip.CheckpointError, match="rn_truncated.pt"):
    clip.load(fixtures_dir / "rn_truncated.pt")


def test_truncated_safetensors(fixtures_dir, tmp_path):
  data = (fixtures_dir / "vit.safetensors").read_bytes()
  p = tmp_path / "cut.safetensors"
  p.write_bytes(data[: len(data) // 2])
  with pytest.raises(clip.CheckpointError, match="truncated"):
    clip.load(p)


def test_mismatched_file_lists_all_bad_keys(fixtures_dir):
  with pytest.raises(clip.CheckpointError) as e:
    clip.load(fixtures_dir / "rn_mismatched.pt")
  msg = str(e.value)
  assert "rn_mismatched.pt" in msg
  assert "missing (2)" in msg and "attnpool.q_proj.bias, layer2.0.bn1.bias" in msg
  assert "unexpected (1): extra.weight" in msg
  assert "mis-shaped (1): layer2.0.conv2.weight (32, 32, 1, 1) (expected (32, 32, 3, 3))" in msg


def test_restricted_unpickler_refuses_code(tmp_path):
  """A torch.save-style zip whose pickle calls os.system is refused, not executed."""
  import pickle  # pylint: disable=import-outside-toplevel
  import zipfile  # pylint: disable=import-outside-toplevel

  class Evil:
    def __reduce__(self):
      return (os.system, ("touch " + str(tmp_path / "pwned"),))

  p = tmp_path / "evil.pt"
  with zipfile.ZipFile(p, "w") as zf:
    zf.writestr("evil/data.pkl", pickle.dumps({"x": Evil()}))
  with pytest.raises(clip.CheckpointError, match="refusing"):
    clip.read_state_dict(p)
  assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["tiny-rn", "tiny-vit"])
def test_key_mapping_round_trips(name, open_clip):
  """Every open_clip visual key maps to a Flax path and back (used in error messages)."""
  del open_clip
  from featcon.clip import convert  # pylint: disable=import-outside-toplevel
  m = reference.torch_tower(clip.get_config(name))
  for k, v in m.state_dict().items():
    r = convert._flax_path(k, v.numpy())  # pylint: disable=protected-access
    if r is None:
      assert k.endswith("num_batches_tracked")
      continue
    assert convert._torch_key((r[0],) + r[1]) == k  # pylint: disable=protected-access
