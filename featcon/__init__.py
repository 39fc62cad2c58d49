"""featcon: feature contamination (Zhang et al., ICML 2024) in JAX.

The theory simulator (:mod:`featcon.theory`): :func:`simulate` runs one configuration of the
structured feature model (Definition 3.1) with a two-layer network trained by SGD-type
optimizers and measures it; :func:`sweep` runs many at once; :func:`default_config` gives the
public script's classification setting; :func:`use_all_cpu_cores` (before JAX starts) makes a
sweep use every CPU core. The deep-network stage lives in :mod:`featcon.clip`,
:mod:`featcon.models`, :mod:`featcon.data`, :mod:`featcon.distill`, :mod:`featcon.probe` and
:mod:`featcon.analysis` (``docs/architecture.md``).
"""
from featcon import _configs_alias
_configs_alias.install()

from featcon import progress as _progress
_progress.quiet_backend_probe()

from featcon import theory
from featcon.distributed import use_all_cpu_cores
from featcon.io import versions
from featcon.theory.config import default_config, resolve as resolve_config
from featcon.theory.simulation import Result, simulate
from featcon.theory.sweeps import sweep
from featcon.version import __version__
