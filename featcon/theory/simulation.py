"""``featcon.simulate(config)``: one configuration of the theory, end to end."""
import dataclasses
import json
import logging
import os
import time
from typing import Any, Dict, Optional

import jax
import ml_collections
import numpy as np

from featcon import io
from featcon import progress as progress_lib
from featcon.theory import config as config_lib
from featcon.theory import program
from featcon.theory import train as theory_train


@dataclasses.dataclass
class Result:
  """The outcome of :func:`simulate`.

  Attributes:
    metrics: dict of numpy arrays over log steps (``step``, ``id_risk``, ``ood_risk``,
      ``id_error``, ``ood_error``, ``core_corr``, ``bg_corr``, ``bg_signed``, ``asym_frac``,
      ... see :mod:`featcon.theory.metrics`).
    final: the last value of every scalar metric, as floats.
    config: the resolved config.
    params: final params in input coordinates (numpy), or None.
    diverged_step: the first step whose training loss was not finite (later metrics are
      NaN and the final params are those of the last log step before it), or None.
    versions: package versions and platform.
  """
  metrics: Dict[str, np.ndarray]
  final: Dict[str, float]
  config: ml_collections.ConfigDict
  params: Optional[Dict[str, np.ndarray]] = None
  diverged_step: Optional[int] = None
  versions: Dict[str, Any] = dataclasses.field(default_factory=io.versions)

  def save(self, path):
    """Writes ``path/result.json`` (config, final, versions) and ``path/arrays.npz``, atomically."""
    os.makedirs(path, exist_ok=True)
    meta = {"config": self.config.to_dict(), "final": self.final,
            "diverged_step": self.diverged_step, "versions": self.versions}
    arrays = {f"metrics/{k}": v for k, v in self.metrics.items()}
    arrays.update({f"params/{k}": v for k, v in (self.params or {}).items()})
    io.atomic_write(os.path.join(path, "arrays.npz"), lambda f: np.savez(f, **arrays), binary=True)
    io.atomic_write(os.path.join(path, "result.json"),
                 lambda f: json.dump(meta, f, indent=2, default=io.jsonable))

  @classmethod
  def load(cls, path):
    """Reads a result written by :meth:`save`."""
    fix = "delete the folder and rerun the simulation that saved it"
    meta = io.read_json(os.path.join(path, "result.json"), fix=fix)
    z = io.load_npz(os.path.join(path, "arrays.npz"), fix=fix)
    metrics = {k.split("/", 1)[1]: v for k, v in z.items() if k.startswith("metrics/")}
    params = {k.split("/", 1)[1]: v for k, v in z.items() if k.startswith("params/")}
    cfg = config_lib.resolve(_tuples(meta["config"]))
    return cls(metrics, meta["final"], cfg, params or None, meta["diverged_step"],
               meta["versions"])


def _tuples(d):
  return {k: (_tuples(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v)
          for k, v in d.items()}


def finalize(metrics, diverged_step):
  """Host-side post-processing shared by simulate and sweep: NaN after divergence, finals."""
  metrics = {k: np.array(v) for k, v in metrics.items()}
  if diverged_step is not None and diverged_step >= 0:
    after = metrics["step"] > diverged_step
    for k, v in metrics.items():
      if k != "step" and v.dtype.kind == "f":
        v[after] = np.nan
  final = {k: float(v[-1]) for k, v in metrics.items() if v.ndim == 1}
  return metrics, final


# Device memory one :func:`simulate` call may use unless told otherwise (GiB).
MEMORY_BUDGET_GB = 16.0


def simulate(config=None, progress=True, memory_budget_gb=MEMORY_BUDGET_GB):
  """Runs one configuration of the feature-contamination model and measures it.

  Args:
    config: an ``ml_collections.ConfigDict`` or nested dict with sections ``data``,
      ``model``, ``train`` and a top-level ``seed``; missing fields take the values of
      :func:`featcon.default_config` (the public script's classification setting).
    progress: show a progress bar over the log intervals (tqdm; started once the program is
      compiled, so its ETA counts training only) and a closing line with compile and run
      times on stderr. ``False``: silent.
    memory_budget_gb: device memory the run may use (GiB, default 16); a configuration whose
      estimated footprint (:func:`featcon.theory.program.bytes_per_config`) exceeds it is refused
      before compiling.

  Returns:
    A :class:`Result`.

  Raises:
    ValueError: for a bad config or one estimated to need more than ``memory_budget_gb``,
      before anything is compiled.

  Example:
    >>> r = featcon.simulate({"train": {"steps": 2000, "log_every": 500}})
    >>> r.final["ood_risk"] > r.final["id_risk"]
    True
  """
  if (isinstance(memory_budget_gb, bool) or not isinstance(memory_budget_gb, (int, float))
      or not memory_budget_gb > 0):
    raise ValueError(f"simulate: memory_budget_gb={memory_budget_gb!r}; allowed: a positive "
                     "number of GiB")
  cfg = config_lib.resolve(config)
  static, dyn = program.from_config(cfg)
  program.check_memory(static, memory_budget_gb, "memory_budget_gb (simulate's argument)")
  options = program.compiler_options()
  bar = progress_lib.Bar(static.n_logs, "simulate", progress, unit="log")
  train = theory_train.make_train(static, on_log=bar if progress else None)
  t0 = time.perf_counter()
  compiled = jax.jit(train).lower(dyn).compile(options)
  compile_s = time.perf_counter() - t0
  bar.start()
  metrics, final = compiled(dyn)
  metrics, final = jax.device_get((metrics, final))
  bar.close()
  div = int(final["diverged_step"])
  div = None if div < 0 else div
  if div is not None:
    logging.warning("training diverged (non-finite loss) at step %d; stopped there", div)
  metrics, finals = finalize(metrics, div)
  progress_lib.stage(
      f"simulate: {static.steps} steps in {bar.elapsed:.1f}s (compile {compile_s:.1f}s); "
      f"final ID risk {finals['id_risk']:.4g}, OOD risk {finals['ood_risk']:.4g}", progress)
  params = {k: np.asarray(v) for k, v in final["params"].items()}
  return Result(metrics, finals, cfg, params, div)
