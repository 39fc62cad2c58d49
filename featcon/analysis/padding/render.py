"""The experiment's inputs (Appendix F.4): grey digits on coloured borders, and padded RGB images.

Digits (`render`): grey glyphs upsampled into the centre of a `size`×`size` canvas whose border of
`pad` pixels has one constant colour per image.

RGB images (`render_rgb`), the paper's operation on CIFAR-10: image x (H×W×3, values in [0, 1])
gets `pad` = p pixels of one constant colour c on every side, and the (H+2p)×(W+2p) canvas is
resized back to H×W:

    x̃ = R( P_p(x, c) ),   P_p(x, c)[i, j] = x[i−p, j−p] inside, c on the border,

P_p = `featcon.data.preprocess.pad_canvas` (the geometry shared with the registry's `cifar10_red`)
and R = `jax.image.resize(…, "linear")`: an antialiased triangle filter, widened by the downscale
factor (H+2p)/H and renormalised at the edges; output pixel i samples canvas coordinate
(i + ½)(H+2p)/H − ½. It is linear and its weights are non-negative, so every output pixel is a
convex combination of canvas pixels: output pixels whose filter support lies in the border equal c
exactly, those whose support lies in the image equal the image resized by H/(H+2p) and shifted by
p·H/(H+2p) px (for CIFAR-10, p = 8: pixels 0–4 and 27–31 are pure colour, 6–25 pure image, 5 and
26 mixed). It runs on device inside the jitted step, so every step draws fresh colours. (The
registry's `cifar10_red` pads on the host and resizes with PIL's bicubic filter on uint8; the
colour and the geometry are the same, `preprocess.pad_brick_red` says why the resamplers differ.)
"""
import jax
import jax.numpy as jnp
import numpy as np

from featcon.data import preprocess


def border_mask(size, pad):
  """(size, size) float mask: 1 on the central digit region, 0 on the padding."""
  m = np.zeros((size, size), np.float32)
  m[pad:size - pad, pad:size - pad] = 1.0
  return m


def render(glyphs, colours, size, pad):
  """Draws grey glyphs (N, h, w) into RGB canvases (N, size, size, 3) with coloured borders.

  x = M ⊙ (glyph upsampled bilinearly to the central (size − 2·pad)², repeated on R, G, B)
      + (1 − M) ⊙ c,  M = `border_mask(size, pad)`.
  """
  inner = size - 2 * pad
  if inner < 1:
    raise ValueError(f"pad={pad}: leaves no room for the digit in size={size}")
  g = jax.image.resize(jnp.asarray(glyphs), (glyphs.shape[0], inner, inner), "bilinear")
  g = jnp.pad(jnp.clip(g, 0, 1), ((0, 0), (pad, pad), (pad, pad)))[..., None]
  mask = jnp.asarray(border_mask(size, pad))[None, :, :, None]
  return mask * jnp.repeat(g, 3, axis=-1) + (1 - mask) * colours[:, None, None, :]


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
  canvas = preprocess.pad_canvas(x, colours, pad, xp=jnp)
  return jax.image.resize(canvas, x.shape, "linear", antialias=True)
