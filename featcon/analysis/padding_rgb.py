"""The RGB-image path of the padded-image experiment (Appendix F.4, Figure 6c) at full scale.

`featcon.analysis.padding` runs the experiment; this module holds what is specific to natural
colour images: reading them from the data registry, the paper's padding, and the filter measure.

Padding (`render_rgb`), the paper's operation on CIFAR-10: image x (H×W×3, values in [0, 1]) gets
`pad` = p pixels of one constant colour c on every side, and the (H+2p)×(W+2p) canvas is resized
back to H×W:

    x̃ = R( P_p(x, c) ),   P_p(x, c)[i, j] = x[i−p, j−p] inside, c on the border,

R = `jax.image.resize(…, "linear")`: an antialiased triangle filter, widened by the downscale
factor (H+2p)/H and renormalised at the edges; output pixel i samples canvas coordinate
(i + ½)(H+2p)/H − ½. It is linear and its weights are non-negative, so every output pixel is a
convex combination of canvas pixels: output pixels whose filter support lies in the border equal c
exactly, those whose support lies in the image equal the image resized by H/(H+2p) and shifted by
p·H/(H+2p) px (for CIFAR-10, p = 8: pixels 0–4 and 27–31 are pure colour, 6–25 pure image, 5 and
26 mixed). It runs on device inside the jitted step, so every step draws fresh colours. (The
registry's `cifar10_red` pads on the host with PIL's bicubic filter on uint8; the geometry is the
same.)

Filter measure (`filter_pad_stats`). On the grey digits the core features lie on the grey axis and
the padding is the only source of chroma, so the digits path splits filters into grey and chroma
parts. Natural images have colour in every direction, so that split does not transfer. What does:
a first-layer filter w_f (k_h×k_w×3, bias b_f) answers a uniform patch of colour x with

    r_f(x) = s_fᵀ x + b_f,   s_f = Σ_taps w_f[h, w, :] ∈ R³  (the filter's colour sum),

and padding adds uniform patches of colour c to images whose mean pixel colour is m (over the
unpadded training images). With the padding direction u = (c − m)/‖c − m‖ and the unit tensor
e_u = 1_{k_h×k_w} ⊗ u / √(k_h k_w) (a uniform patch of colour direction u):

    pad_response     = mean_f |s_fᵀu| = mean_f |r_f(c) − r_f(m)| / ‖c − m‖
                       (how much a filter's output changes when a uniform patch turns from the
                       data's mean colour to the padding colour, per unit colour distance);
    pad_share        = Σ_f ⟨w_f, e_u⟩² / Σ_f ‖w_f‖² = Σ_f (s_fᵀu)² / (k_h k_w Σ_f ‖w_f‖²)
                       (share of the filters' squared norm along e_u; 1/(3 k_h k_w) = 1/27 in
                       expectation for isotropic random 3×3 filters, 1 for w_f ∝ e_u);
    colour_share     = Σ_f ‖s_f‖² / (k_h k_w Σ_f ‖w_f‖²)
                       (share along all three uniform-colour directions; 1/(k_h k_w) isotropic);
    pad_colour_share = Σ_f (s_fᵀu)² / Σ_f ‖s_f‖²
                       (share of the filters' uniform-colour response on u; 1/3 isotropic);
    norm             = mean_f ‖w_f‖.

A filter exactly along e_u gives pad_response = √(k_h k_w), pad_share = pad_colour_share = 1;
a filter orthogonal to every uniform patch of colour u gives 0 for all three. Natural images also
vary along u (for brick red against CIFAR-10's mean colour, u is roughly red vs cyan), so the
control run learns some response along u too: the evidence is the difference padded − control at
the same init. (The digits path's `pad_response` is the same response with u the chroma part of
c, the component of the padding colour that grey digits cannot produce; natural images leave no
such component, hence the direction from their mean colour.)
"""
import jax
import jax.numpy as jnp
import numpy as np


def rgb_sources():
  """Registry data sets the RGB path accepts: those with "train" and "test" splits and no
  built-in transform (`cifar10_red` is already padded: use `cifar10`)."""
  from featcon.data import registry  # pylint: disable=g-import-not-at-top
  return sorted(n for n, s in registry.REGISTRY.items()
                if {"train", "test"} <= set(s.splits) and s.transform is None)


def render_rgb(images, colours, pad):
  """x̃_i = R(P_p(x_i, c_i)) of the module docstring: pad, then resize back to the input size.

  Args:
    images: (N, H, W, 3) floats in [0, 1].
    colours: (N, 3) padding colours in [0, 1], one per image.
    pad: border width p in pixels before the resize (the paper: 8 on 32×32 CIFAR-10).
  Returns:
    (N, H, W, 3) float32 images in [0, 1].
  """
  if pad < 0:
    raise ValueError(f"pad={pad}: must be >= 0")
  x = jnp.asarray(images, jnp.float32)
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"images.shape={x.shape}: need (N, H, W, 3)")
  if pad == 0:
    return x
  n, h, w, _ = x.shape
  inside = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
  inside[pad:pad + h, pad:pad + w] = 1.0
  canvas = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  canvas = canvas + (1.0 - jnp.asarray(inside)[None, :, :, None]) * colours[:, None, None, :]
  return jax.image.resize(canvas, (n, h, w, 3), "linear", antialias=True)


def filter_pad_stats(kernel, pad_rgb, mean_rgb):
  """pad_response, pad_share, colour_share, pad_colour_share and norm of the module docstring.

  Args:
    kernel: first-layer filters (k_h, k_w, 3, F).
    pad_rgb: the padding colour c (3,), same units as mean_rgb (e.g. [0, 1]).
    mean_rgb: the mean pixel colour m (3,) of the unpadded training images.
  Returns:
    A dict of floats.
  """
  w = jnp.asarray(kernel, jnp.float32)
  if w.ndim != 4 or w.shape[2] != 3:
    raise ValueError(f"kernel.shape={w.shape}: need (kh, kw, 3, filters)")
  d = np.asarray(pad_rgb, np.float64) - np.asarray(mean_rgb, np.float64)
  if np.linalg.norm(d) < 1e-6:
    raise ValueError(f"pad_rgb={tuple(pad_rgb)} equals mean_rgb={tuple(mean_rgb)}: the padding "
                     "colour must differ from the data's mean colour to define its direction")
  u = jnp.asarray(d / np.linalg.norm(d), jnp.float32)
  taps = w.shape[0] * w.shape[1]
  s = w.sum((0, 1))                                   # (3, F): s_f
  proj = jnp.einsum("cf,c->f", s, u)                  # s_fᵀu
  tot2 = (w ** 2).sum()
  dc2 = (s ** 2).sum()
  return {
      "norm": float(jnp.sqrt((w ** 2).sum((0, 1, 2))).mean()),
      "colour_share": float(dc2 / taps / tot2),
      "pad_share": float((proj ** 2).sum() / taps / tot2),
      "pad_colour_share": float((proj ** 2).sum() / jnp.maximum(dc2, 1e-30)),
      "pad_response": float(jnp.abs(proj).mean()),
  }


def load_images(name, split, n, size, data_dir=None, seed=0):
  """Up to `n` images of registry data set `name` at `split`, as uint8 (N, size, size, 3) + labels.

  Reads through `featcon.data.registry.load` (TFDS `data_source` with download=False, image
  folders, the offline digits), one index at a time (batched reads fail on TFDS mocks); raises
  its DatasetNotPreparedError, which names the build command, when the set is not on disk.
  `n` = 0 reads every example; otherwise a fixed seeded subset. Images of another size are
  resized on the host (PIL bicubic) to size×size.

  Returns:
    (images, labels int32, num_classes).
  """
  from featcon.data import preprocess, registry  # pylint: disable=g-import-not-at-top
  ds = registry.load(name, split, data_dir=data_dir or None)
  src = ds.source
  total = len(src)
  if total == 0:
    raise ValueError(f"data set {name!r} split={split!r} is empty")
  idx = np.arange(total)
  if n and n < total:
    idx = np.sort(np.random.default_rng(seed).permutation(total)[:n])
  images = np.empty((len(idx), size, size, 3), np.uint8)
  labels = np.empty((len(idx),), np.int32)
  for j, i in enumerate(idx):
    ex = src[int(i)]
    img = np.asarray(ex["image"], np.uint8)
    if img.ndim == 2:
      img = img[..., None]
    if img.shape[-1] == 1:
      img = np.repeat(img, 3, axis=-1)
    img = img[..., :3]
    images[j] = preprocess.resize(np.ascontiguousarray(img), (size, size))
    labels[j] = ex["label"]
  if labels.min() < 0 or labels.max() >= ds.num_classes:
    raise ValueError(f"data set {name!r} split={split!r}: labels in [{labels.min()}, "
                     f"{labels.max()}] outside [0, {ds.num_classes})")
  return images, labels, ds.num_classes
