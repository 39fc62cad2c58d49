"""featcon: feature contamination (Zhang et al., ICML 2024) in JAX.

The theory simulator: :func:`simulate` runs one configuration of the structured feature model
(Definition 3.1) with a two-layer network trained by SGD-type optimizers and measures it;
:func:`default_config` gives the public script's classification setting.
"""
from featcon.config import default_config, resolve as resolve_config
from featcon.simulation import Result, simulate, versions
from featcon.version import __version__
from featcon.sweeps import sweep
from featcon import train
