"""JAX's persistent compilation cache for featcon's programs.

:func:`enable` points JAX at ``$FEATCON_JAX_CACHE`` (default ``~/.cache/featcon/jax``): a
compiled program is stored under a key of its lowered text, compile options and backend, and a
later process that compiles the same program loads it instead. JAX does not store programs that
contain host callbacks; the theory sweep's programs have none (progress is reported from the
host, :mod:`featcon.theory.runner`).
"""
import os

import jax

ENV = "FEATCON_JAX_CACHE"


def default_path() -> str:
  """``$FEATCON_JAX_CACHE``, or ``~/.cache/featcon/jax`` when it is unset or empty."""
  return os.environ.get(ENV) or os.path.join(os.path.expanduser("~"), ".cache", "featcon", "jax")


def enable(path: str | None = None, min_compile_s: float = 0.0) -> str:
  """Turns on the cache in ``path`` (default :func:`default_path`) for every program whose
  compile takes at least ``min_compile_s`` seconds (0: every program). Returns the path."""
  path = path or default_path()
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_s))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path
