"""featcon: feature contamination (Zhang et al., ICML 2024) in JAX."""
from featcon.version import __version__
