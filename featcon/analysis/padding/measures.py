"""Measures of the padded-image experiment (Appendix F.4): first-layer filters and representations.

Grey digits (`filter_colour_stats`). Because the digits are grey, their *core* features lie on the
grey axis g = (1, 1, 1)/√3 of colour space, and the padding colour is the only source of chroma
(the plane orthogonal to g): the chroma part of a first-layer filter is the deep analogue of
docs/theory.md's background projection `C_bg`. For the control run the chroma part of the stem
filters receives no gradient at all (its inputs have none), so it only changes by weight decay;
any growth in the padded run is learned from a feature uncorrelated with the label.

RGB images (`filter_pad_stats`). Natural images have colour in every direction, so the digits'
grey/chroma split does not transfer. What does: a first-layer filter w_f (k_h×k_w×3, bias b_f) answers a uniform patch of colour x with

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

Representations (`within_group_variance_fraction`): the share of a representation's variance over
images × padding colours that changing only the padding colour causes.
"""
import jax.numpy as jnp
import numpy as np

from featcon.analysis.padding.colours import COLOUR_FAMILIES
from featcon.analysis.padding.colours import GREY


def filter_colour_stats(kernel, pad_rgb=COLOUR_FAMILIES["red"]):
  """Colour decomposition of first-layer filters (kh, kw, 3, F) for grey data; a dict of floats.

  Each filter's RGB weight vector at each tap is split into its grey-axis part (g gᵀ w, where
  the grey digits live) and its chroma part ((I − g gᵀ) w, reachable only through the padding).
  - grey_norm, chroma_norm: mean over filters of the Frobenius norms of the two parts;
  - chroma_share: Σ chroma² / Σ total² over all filters (2/3 for isotropic random filters);
  - pad_response: mean over filters of |Σ_taps wᵀ u|, u the unit chroma direction of the padding
    colour (brick red by default): how strongly a filter answers a uniform patch of that colour
    beyond its brightness.
  """
  w = jnp.asarray(kernel)
  if w.ndim != 4 or w.shape[2] != 3:
    raise ValueError(f"kernel.shape={w.shape}: need (kh, kw, 3, filters)")
  g = jnp.asarray(GREY)
  grey = jnp.einsum("hwcf,c->hwf", w, g)                       # coefficient on g
  chroma = w - grey[:, :, None, :] * g[None, None, :, None]
  c = np.asarray(pad_rgb, np.float32)
  u = c - c.dot(GREY) * GREY
  u = jnp.asarray(u / np.linalg.norm(u))
  resp = jnp.abs(jnp.einsum("hwcf,c->f", w, u))
  tot2 = (w ** 2).sum()
  return {
      "grey_norm": float(jnp.sqrt((grey ** 2).sum((0, 1))).mean()),
      "chroma_norm": float(jnp.sqrt((chroma ** 2).sum((0, 1, 2))).mean()),
      "chroma_share": float((chroma ** 2).sum() / tot2),
      "pad_response": float(resp.mean()),
  }


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


def within_group_variance_fraction(reps):
  """Share of the total variance of reps (G images, P colours, d) that lies within images.

  `Σ_d mean_g Var_p(reps[g, p, d]) / Σ_d Var_{g,p}(reps[g, p, d])`: 0 when the padding colour
  does not move the representation, 1 when only the colour does.
  """
  reps = jnp.asarray(reps)
  within = reps.var(axis=1).mean(0).sum()
  total = reps.reshape(-1, reps.shape[-1]).var(0).sum()
  return float(within / jnp.maximum(total, 1e-12))
