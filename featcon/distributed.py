"""Devices and processes: every CPU core as a JAX device, and many hosts through JAX's own
distributed runtime (``jax.distributed``).

Before JAX starts (before the first computation or ``jax.devices()``), a Python user calls

  import featcon
  featcon.use_all_cpu_cores()   # one JAX device per CPU core

and a script (``experiments/*.py``) calls :func:`add_flags` at import and :func:`initialize`
first thing in ``main``; they give ``--cpu_devices`` and the arguments of
``jax.distributed.initialize`` (``--coordinator_address``, ``--num_processes``,
``--process_id``). ``docs/scaling.md`` has the launch commands.

With several processes every process runs the same program over the global devices; helpers
here feed each process's addressable part of a global array (:func:`global_array`,
:func:`local_rows`), bring results back to every process (:func:`gather`) and say which
process writes files (:func:`is_main`).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax._src import xla_bridge  # backends_are_initialized has no public spelling

log = logging.getLogger("featcon")

_FORCE_FLAG = "xla_force_host_platform_device_count"
_warned_single = False


def cpu_cores() -> int:
  """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return os.cpu_count() or 1


def _check_not_started(what: str):
  if xla_bridge.backends_are_initialized():
    raise RuntimeError(
        f"{what} must run before JAX starts, but JAX's backends are already initialised (some "
        "computation, jax.devices() or jax.device_count() ran first). Call it right after "
        "`import featcon`, or set JAX_NUM_CPU_DEVICES in the environment before Python starts.")


def use_all_cpu_cores(num_devices: int = 0) -> int:
  """Exposes the CPU as ``num_devices`` JAX devices (0 = one per core); returns that number.

  XLA:CPU runs the small batched matmuls of a sweep on one core per device, and
  :func:`featcon.sweep` shards configurations over all devices, so on a multi-core machine this
  is what makes a sweep use the whole CPU. Results equal the one-device run. Sets
  ``jax_num_cpu_devices``; has no effect on GPU/TPU devices.

  Raises:
    ValueError: ``num_devices`` is negative.
    RuntimeError: JAX's backends are already initialised (the device count is fixed then).
  """
  if not isinstance(num_devices, (int, np.integer)) or num_devices < 0:
    raise ValueError(f"num_devices={num_devices!r}; allowed: 0 (one device per CPU core) or a "
                     "positive integer")
  _check_not_started("featcon.use_all_cpu_cores()")
  n = int(num_devices) or cpu_cores()
  jax.config.update("jax_num_cpu_devices", n)
  return n


def one_cpu_device_note():
  """A short note, the first time it is asked for in a process, when computations run on one
  CPU device of a multi-core machine (``""`` otherwise, and on every later call): how to use
  every core. The sweep appends it to its first console line; it is not a warning, since one
  device is a correct, if slower, way to run."""
  global _warned_single
  if _warned_single or jax.default_backend() != "cpu" or jax.device_count() > 1:
    return ""
  cores = cpu_cores()
  if cores <= 1:
    return ""
  _warned_single = True
  return (f"1 of {cores} cores; featcon.use_all_cpu_cores() before JAX starts, or "
          "--cpu_devices=0, uses them all")


# ---------------------------------------------------------------------------------------------
# Command-line flags of the entry points.

def add_flags(cpu_devices: int = 0):
  """Defines ``--cpu_devices`` and the ``jax.distributed`` flags (call at import of a script).

  Args:
    cpu_devices: the default of ``--cpu_devices`` (0 = one device per core, n = n devices).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  if "cpu_devices" in flags.FLAGS:  # several entry points imported into one process (tests)
    return
  flags.DEFINE_integer(
      "cpu_devices", cpu_devices,
      "JAX devices the CPU is split into (0 = one per core, 1 = one device); set before JAX "
      "starts, ignored when XLA_FLAGS or JAX_NUM_CPU_DEVICES already set a count.", lower_bound=0)
  flags.DEFINE_string("coordinator_address", None,
                      "host:port of process 0 for jax.distributed.initialize (multi-host).")
  flags.DEFINE_integer("num_processes", None, "Processes in a multi-host run.", lower_bound=1)
  flags.DEFINE_integer("process_id", None, "This process's index in a multi-host run.",
                       lower_bound=0)
  flags.DEFINE_enum("distributed", "auto", ["auto", "yes", "no"],
                    "Call jax.distributed.initialize: auto = when the flags above are given or a "
                    "SLURM/Open MPI job with several tasks or a multi-host TPU is detected; yes = "
                    "always (JAX auto-detects its arguments); no = never.")


def cluster_detected(env=None) -> str | None:
  """The multi-process launcher JAX can read its arguments from, or None.

  SLURM (``srun`` with several tasks), Open MPI (``mpirun`` with several ranks) and multi-host
  Cloud TPU VMs (``TPU_WORKER_HOSTNAMES`` with several hosts).
  """
  env = os.environ if env is None else env
  if "SLURM_JOB_ID" in env and int(env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1"))) > 1:
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "ompi"
  if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
    return "tpu"
  return None


def initialize(cpu_devices: int | None = None, coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None,
               distributed: str = "auto"):
  """Applies the device and process flags; call before JAX starts.

  Without arguments, reads the flags of :func:`add_flags`. Returns
  ``(process_index, process_count)``.
  """
  if cpu_devices is None:
    from absl import flags  # pylint: disable=g-import-not-at-top
    f = flags.FLAGS
    cpu_devices, coordinator_address = f.cpu_devices, f.coordinator_address
    num_processes, process_id, distributed = f.num_processes, f.process_id, f.distributed
  if distributed not in ("auto", "yes", "no"):
    raise ValueError(f"distributed={distributed!r}; allowed: auto, yes, no")
  explicit = {"coordinator_address": coordinator_address, "num_processes": num_processes,
              "process_id": process_id}
  given = {k: v for k, v in explicit.items() if v is not None}
  if given and distributed == "no":
    raise ValueError(f"--distributed=no contradicts {sorted(given)}")
  cluster = cluster_detected()
  if distributed == "yes" or given or (distributed == "auto" and cluster):
    _check_not_started("featcon.distributed.initialize()")
    log.info("jax.distributed.initialize(%s)%s", given or "",
             f" ({cluster} detected)" if cluster and not given else "")
    jax.distributed.initialize(**given)
  forced = _FORCE_FLAG in os.environ.get("XLA_FLAGS", "") or "JAX_NUM_CPU_DEVICES" in os.environ
  if not forced and not xla_bridge.backends_are_initialized():
    use_all_cpu_cores(cpu_devices)
  return jax.process_index(), jax.process_count()


# ---------------------------------------------------------------------------------------------
# Feeding and gathering across processes.

def is_main() -> bool:
  """True on the process that writes results, figures and JSON (process 0); True without
  ``jax.distributed`` (and then JAX's backends are not started by asking)."""
  return not jax.distributed.is_initialized() or jax.process_index() == 0


def local_rows(sharding, global_rows: int) -> slice:
  """The rows ``[start, stop)`` of a leading-axis-sharded global array this process holds.

  With a 1-D mesh over ``jax.devices()`` (ordered by process) they are contiguous.
  """
  spans = [idx[0] for idx in
           sharding.addressable_devices_indices_map((global_rows,)).values()]
  starts = [s.start or 0 for s in spans]
  stops = [global_rows if s.stop is None else s.stop for s in spans]
  lo, hi = min(starts), max(stops)
  covered = sum(b - a for a, b in sorted(set(zip(starts, stops))))
  if covered != hi - lo:
    raise ValueError(f"this process's rows of the sharding are not contiguous: {spans}")
  return slice(lo, hi)


def global_array(tree, sharding):
  """Places host arrays (the same on every process) on ``sharding``; each process transfers
  only the shards its own devices hold."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  def one(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
  return jax.tree.map(one, tree)


def from_local_rows(tree, sharding, global_rows: int):
  """A global array from this process's rows (:func:`local_rows`) of it."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  def one(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x, (global_rows,) + x.shape[1:])
  return jax.tree.map(one, tree)


def gather(tree) -> Any:
  """Numpy copies of (possibly multi-process) arrays, the whole array on every process."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, jax.device_get(tree))
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
  return jax.tree.map(one, tree)


def agree(value: Any) -> Any:
  """Process 0's ``value`` on every process (a decision all processes must share, such as
  whether a result file exists)."""
  if jax.process_count() == 1:
    return value
  return multihost_utils.broadcast_one_to_all(np.asarray(value)).item()
