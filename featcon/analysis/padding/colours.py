"""Padding-colour families of the padded-image experiment (Appendix F.4) and their sampling.

A family names where a padding colour comes from: "red" = brick red (150, 50, 50) ± Uniform(−jitter,
jitter) per channel, "red_fixed" = exactly brick red (the paper), likewise green, blue, yellow;
"black" (fixed: the digits' own background); "mean" = the training images' mean pixel colour m
(fixed); "none" = no padding at all. Colours are RGB in [0, 1].
"""
import jax
import jax.numpy as jnp
import numpy as np

from featcon.data import preprocess

COLOUR_FAMILIES = {
    "red": preprocess.BRICK_RED,   # the paper's brick red
    "green": (50, 150, 50),
    "blue": (50, 50, 150),
    "yellow": (150, 150, 50),
    "black": (0, 0, 0),            # the digits' control: the digit's own background
}
MEAN = "mean"                      # the training images' mean pixel colour (fixed)
UNPADDED = "none"                  # no padding at all
FIXED = "_fixed"                   # suffix: the family's centre without jitter
GREY = np.ones(3, np.float32) / np.sqrt(3.0)


def family_names():
  """Every allowed colour-family name (see the module docstring)."""
  return (sorted(COLOUR_FAMILIES) + [f"{k}{FIXED}" for k in sorted(COLOUR_FAMILIES)]
          + [MEAN, UNPADDED])


def describe(name, jitter=None):
  """A family in words, for figure rows and legends: ``'red'`` → ``'red (150, 50, 50) ± 0.15
  per channel'``, ``'red_fixed'`` → ``'red (150, 50, 50), fixed'``, ``'mean'`` → ``'the
  data's mean colour'``, ``'none'`` → ``'no border (unpadded)'``."""
  if name == UNPADDED:
    return "no border (unpadded)"
  if name == MEAN:
    return "border in the data's mean colour"
  base = base_family(name)
  if base not in COLOUR_FAMILIES:
    return name
  rgb = ", ".join(str(int(v)) for v in COLOUR_FAMILIES[base])
  _, jittered = parse_family(name)
  if jittered:
    spread = f" ± {jitter:g} per channel" if jitter is not None else ", jittered"
    return f"{base} ({rgb}){spread}"
  return f"{base} ({rgb}), fixed"


def base_family(name):
  """The family without its '_fixed' suffix: 'red_fixed' → 'red', 'red' → 'red'."""
  return name[:-len(FIXED)] if name.endswith(FIXED) else name


def family_rgb(name):
  """The centre colour (3,) in [0, 1] of a named colour family ('red', 'red_fixed', ...)."""
  base = base_family(name)
  if base not in COLOUR_FAMILIES:
    raise ValueError(f"colour family={name!r}: allowed {sorted(COLOUR_FAMILIES)} "
                     f"(optionally with {FIXED!r})")
  return np.asarray(COLOUR_FAMILIES[base], np.float32) / 255.0


def parse_family(name, mean_rgb=None):
  """Colour family → (centre RGB in [0, 1], jittered).

  'red' → (brick red, True); 'red_fixed' → (brick red, False); 'black' → fixed;
  'mean' → (mean_rgb, False), the data's mean pixel colour; 'none' (no padding) → (None, False).
  """
  if name == UNPADDED:
    return None, False
  if name == MEAN:
    if mean_rgb is None:
      raise ValueError("colour family='mean' needs the data's mean colour (mean_rgb)")
    return np.asarray(mean_rgb, np.float32), False
  base = base_family(name)
  if base not in COLOUR_FAMILIES:
    raise ValueError(f"colour family={name!r}: allowed {family_names()}")
  return family_rgb(base), not name.endswith(FIXED) and base != "black"


def sample_colours(key, n, family, jitter, mean_rgb=None):
  """(n, 3) padding colours: the family's centre plus Uniform(−jitter, jitter) per channel.

  'none' has no colour; it gives zeros (unused by the renderers).
  """
  centre, jittered = parse_family(family, mean_rgb)
  if centre is None:
    return jnp.zeros((n, 3), jnp.float32)
  if not jittered:
    return jnp.clip(jnp.broadcast_to(jnp.asarray(centre), (n, 3)), 0.0, 1.0)
  return uniform_colours(key, n, centre, jitter)


def uniform_colours(key, n, centre, amp):
  """(n, 3) colours centre + Uniform(−amp, amp) per channel, clipped to [0, 1].

  centre and amp may be traced values, so one compiled training step serves every family.
  """
  noise = jax.random.uniform(key, (n, 3), minval=-amp, maxval=amp)
  return jnp.clip(jnp.broadcast_to(centre + noise, (n, 3)), 0.0, 1.0)
