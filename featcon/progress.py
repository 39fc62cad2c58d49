"""Progress bars and stage summaries shared by the theory simulator and the deep pipeline.

:class:`Bar` is tqdm's auto bar (a widget in notebooks, text on a terminal), created lazily so
that its clock starts at the first step rather than when a program starts compiling; with
``enabled=False`` it does nothing. :func:`stage` prints a line to stderr, so progress and
summaries reach the user whether or not logging is configured.
"""
import logging
import os
import sys
import time


class Bar:
  """A lazily started progress bar: ``bar(n=1)`` advances it, ``close()`` ends it."""

  def __init__(self, total, desc, enabled=True, unit="step"):
    self.total, self.desc, self.enabled, self.unit = total, desc, enabled, unit
    self.bar = None
    self.t0 = None

  def start(self, initial=0):
    """Starts the clock (and the bar) now; a no-op once started or when disabled."""
    if self.t0 is None:
      self.t0 = time.perf_counter()
    if self.enabled and self.bar is None:
      from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
      self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, smoothing=0.1,
                      leave=True, initial=initial)

  def __call__(self, *unused_args, n=1):
    self.start()
    if self.bar is not None:
      self.bar.update(n)

  def close(self):
    if self.bar is not None:
      self.bar.close()
      self.bar = None

  @property
  def elapsed(self):
    return 0.0 if self.t0 is None else time.perf_counter() - self.t0


def stage(message, enabled=True):
  """Prints ``message`` on stderr (a stage starting or its summary) when ``enabled``."""
  if enabled:
    print(message, file=sys.stderr, flush=True)


def written_since(folder, t0):
  """The files under ``folder`` modified at or after ``time.time()`` value ``t0``, as sorted
  paths relative to ``folder`` (what a stage wrote, for its closing line)."""
  out = []
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      try:
        if os.path.getmtime(path) >= t0 - 1.0:  # file systems keep mtimes to ~1 s
          out.append(os.path.relpath(path, folder))
      except OSError:
        continue
  return sorted(out)


def files_line(stage_name, folder, t0, limit=12):
  """``"<stage>: wrote N files in <folder>: a.json, b.png, ..."`` (at most ``limit`` names)."""
  files = written_since(folder, t0)
  shown = ", ".join(files[:limit]) + (f", … ({len(files) - limit} more)" if len(files) > limit
                                       else "")
  return f"{stage_name}: wrote {len(files)} file(s) in {folder}" + (f": {shown}" if files else "")


class _BackendProbeFilter(logging.Filter):
  """Drops JAX's INFO record of a backend it tried and could not start while choosing one
  automatically ("Unable to initialize backend 'tpu': ... libtpu.so ..."): on a CPU-only
  machine that is expected, and absl's ``app.run`` shows INFO records on stderr. Failures of a
  backend the user asked for (``JAX_PLATFORMS``) are errors and are not affected."""

  def filter(self, record):
    return not (record.levelno <= logging.INFO
                and str(record.msg).startswith("Unable to initialize backend"))


def quiet_backend_probe():
  """Installs :class:`_BackendProbeFilter` on JAX's backend logger (idempotent)."""
  logger = logging.getLogger("jax._src.xla_bridge")
  if not any(isinstance(f, _BackendProbeFilter) for f in logger.filters):
    logger.addFilter(_BackendProbeFilter())
