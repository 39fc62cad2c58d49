"""Helpers of the command-line entry points (``experiments/``, the ``featcon-*`` scripts).

The repository keeps its entry points in ``experiments/`` and its configs in ``configs/``;
an installed featcon ships them as ``featcon.experiments`` and ``featcon.configs``. This module
lets both work from any directory:

* :func:`config_path` resolves ``--config`` file names such as ``configs/theory.py:smoke``
  relative to the current directory, else to the repository root (a checkout or an editable
  install), else to the installed package;
* config files import each other as ``configs.…`` (``from configs.distill.base import …``): in
  an installed featcon, where no top-level ``configs`` exists, that name refers to
  ``featcon.configs`` as soon as any featcon module is imported (:mod:`featcon._configs_alias`,
  run by ``featcon/__init__.py``), so entry points may import in any order.

:func:`run` also sets what a user sees on the console:

* **one-line errors**: featcon's own errors (:class:`featcon.errors.FeatconError`: a bad
  config value, a bad workdir, a corrupt file, ...), a command line absl or ml_collections
  refuses (an unknown ``--config.`` field with its "Did you mean" suggestion, a value of the
  wrong type, a config file that cannot be loaded) and ``app.UsageError`` print
  ``error: <message>`` on stderr and exit with status 2; ``--debug`` shows the traceback
  instead. Any other exception is a bug and keeps its traceback.
* **log lines above progress bars**: while ``main`` runs, absl's stderr handler writes through
  ``tqdm`` (``tqdm.contrib.logging.logging_redirect_tqdm``), so an INFO line never cuts a bar.
* **full ``--help``**: the flags a shared module defines for the entry point (``--config``,
  ``--workdir``, the distributed flags, ``--debug``) are listed as the entry point's own.
"""
import contextlib
import logging
import os
import sys
import traceback

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags
from tqdm.contrib.logging import logging_redirect_tqdm

from featcon import distributed
from featcon.errors import FeatconError

EXIT_USER_ERROR = 2  # status of an error the user can fix (featcon's own, a bad command line)
_DEBUG_FLAGS = ("--debug", "--verbose")
flags.DEFINE_bool("debug", False, "Show the full traceback of an error (by default featcon's own "
                  "errors and command-line errors print one line). --verbose is the same.")
flags.DEFINE_alias("verbose", "debug")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Where "configs/…" may live: the repository root (above featcon/), then the installed package.
_ROOTS = (os.path.dirname(_PACKAGE_DIR), _PACKAGE_DIR)


def config_path(spec):
  """``spec`` (``file.py`` or ``file.py:arg``) with the file resolved as the module says.

  Args:
    spec: a config file name, optionally followed by ``:`` and the config's argument.

  Returns:
    ``spec`` unchanged when the file exists as given (or is absolute), else with the file
    replaced by the first existing ``<root>/<file>``; unchanged when none exists (the config
    loader then reports the missing file).
  """
  file, sep, arg = spec.partition(":")
  if os.path.isabs(file) or os.path.exists(file):
    return spec
  for root in _ROOTS:
    candidate = os.path.join(root, file)
    if os.path.exists(candidate):
      return candidate + sep + arg
  return spec


def resolve_argv(argv, flag="config"):
  """``argv`` with the value of ``--<flag>=FILE[:arg]`` (or ``--<flag> FILE``) resolved by
  :func:`config_path`; overrides such as ``--config.train.steps=10`` are left alone."""
  out, i = [], 0
  argv = list(argv)
  while i < len(argv):
    a = argv[i]
    if a.startswith(f"--{flag}="):
      a = f"--{flag}=" + config_path(a.split("=", 1)[1])
    elif a == f"--{flag}" and i + 1 < len(argv):
      out.append(a)
      i += 1
      a = config_path(argv[i])
    out.append(a)
    i += 1
  return out


def debug_requested(argv):
  """Whether ``argv`` asks for tracebacks (``--debug``/``--verbose``, before any parsing, so
  that a command line that fails to parse can honour it too)."""
  return any(a in _DEBUG_FLAGS or a in tuple(f + "=true" for f in _DEBUG_FLAGS)
             or a in tuple(f + "=True" for f in _DEBUG_FLAGS) for a in argv[1:])


def error_message(exc, argv=()):
  """The message of a user error ``exc``. ml_collections' unknown-field error (a ``KeyError``
  in an ``AttributeError``, spread over two lines) becomes one line naming the
  ``--config.`` override of ``argv`` that asked for the field, with the suggestion; a config
  file that failed to load is named by its last line (the exception), not the traceback
  ml_collections puts in the text."""
  if isinstance(exc, AttributeError) and exc.args and isinstance(exc.args[0], KeyError):
    exc = exc.args[0]  # ml_collections: AttributeError(KeyError(<message>))
  if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
    text = exc.args[0]  # KeyError's str() is the repr of its message
    key, _, hint = text.partition("\n")
    key = key.strip("'\"")
    override = next((a for a in argv if a.startswith("--") and "." in a.split("=", 1)[0]
                     and key in a.split("=", 1)[0].split(".")), None)
    where = f"{override.split('=', 1)[0]}: " if override else ""
    name = override.split("=", 1)[0].split(".", 1)[1] if override else key
    return f"{where}no config field {name!r}" + (f"; {hint.strip()}" if hint.strip() else "")
  text = str(exc)
  if "Error whilst parsing config file" in text:  # ml_collections wraps a traceback in the text
    lines = [l for l in text.strip().splitlines() if l.strip()]
    text = lines[-1].strip() if lines else text
  return text.strip()


def _from_command_line_parser(exc):
  """Whether ``exc`` (raised while parsing flags) comes from absl's or ml_collections' handling
  of the command line rather than from a bug: its innermost frame is in one of them."""
  if isinstance(exc, flags.Error):
    return True
  if not isinstance(exc, (AttributeError, KeyError, TypeError, ValueError, IOError)):
    return False
  frames = traceback.extract_tb(exc.__traceback__)
  if not frames:
    return False
  path = frames[-1].filename.replace(os.sep, "/")
  return "/ml_collections/" in path or "/absl/flags/" in path


def _fail(message, debug):
  """Prints ``error: message`` on stderr (with ``debug``: the traceback being handled first)
  and exits with status 2."""
  if debug:
    traceback.print_exc()
  hint = "" if debug else " (--debug shows the traceback)"
  print(f"error: {message}{hint}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)


def _unloadable_config(flag_values):
  """The error of a config flag whose file could not be loaded (ml_collections defers it to the
  first access), or None."""
  for name in flag_values:
    value = flag_values[name].value
    if type(value).__name__ == "_ErrorConfig":
      err = " ".join(str(object.__getattribute__(value, "_error")).split())
      return f"--{name}: the config file cannot be loaded: {err}"
  return None


def _parse_flags(argv, debug):
  """absl's flag parsing with command-line errors as one line (see the module docstring)."""
  try:
    rest = flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except
    if not _from_command_line_parser(e):
      raise
    _fail(" ".join(error_message(e, argv).split()), debug)
  problem = _unloadable_config(flags.FLAGS)
  if problem:
    _fail(problem, debug)
  return rest


@contextlib.contextmanager
def logs_above_progress_bars():
  """While active, records that absl's handler would print on stderr go through ``tqdm.write``
  (tqdm's ``logging_redirect_tqdm`` around absl's own formatter), so they appear above the
  progress bars instead of inside them. Does nothing where absl's handler is not installed or
  writes elsewhere than the console (``--log_dir`` files)."""
  root = logging.getLogger()
  absl_handler = absl_logging.get_absl_handler()
  python_handler = absl_handler.python_handler
  if absl_handler not in root.handlers or python_handler.stream not in (sys.stderr, sys.stdout):
    yield
    return
  saved = list(root.handlers)
  # The absl handler forwards to its Python handler, a console StreamHandler that tqdm
  # recognises and replaces with its own (same formatter, same stream).
  root.handlers = [python_handler if h is absl_handler else h for h in saved]
  try:
    with logging_redirect_tqdm(loggers=[root]):
      yield
  finally:
    root.handlers = saved


def _adopt_shared_flags(main_module):
  """Registers the flags defined in this module and in :mod:`featcon.distributed` (and any
  other featcon module) as key flags of the entry point, so ``--help`` lists them."""
  for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
    if module == main_module or not (module.startswith("featcon.") or module == "featcon"):
      continue
    for flag in module_flags:
      flags.FLAGS.register_key_flag_for_module(main_module, flag)


def run(main, flags_parser=None):
  """``absl.app.run(main)`` with the ``--config`` file resolved from any directory, one-line
  user errors, log lines above the progress bars and the shared flags in ``--help`` (module
  docstring).

  Args:
    main: the entry point's ``main(argv)``.
    flags_parser: an ``absl.app.run`` flags parser (default: absl's parsing, with command-line
      errors as one line).
  """
  argv = resolve_argv(sys.argv)
  debug = debug_requested(argv)
  _adopt_shared_flags(sys.argv[0])

  def guarded_main(args):
    try:
      with logs_above_progress_bars():
        return main(args)
    except (FeatconError, app.UsageError) as e:
      _fail(error_message(e), debug or flags.FLAGS["debug"].value)

  parser = flags_parser or (lambda a: _parse_flags(a, debug))
  app.run(guarded_main, argv=argv, flags_parser=parser)


def stage_flags(workdir_help, allow_config_change=True, default_config="configs/distill/digits.py"):
  """The flags of a deep-network stage (``experiments.distill``, ``linear_probe``,
  ``evaluate``): ``--config`` (resolved by :func:`config_path`), a required ``--workdir``,
  optionally ``--allow_config_change``, and the distributed flags (one CPU device by default:
  docs/scaling.md).

  Returns:
    (config flag holder, workdir flag holder, allow_config_change holder or None).
  """
  config = config_flags.DEFINE_config_file("config", config_path(default_config),
                                           "Experiment config.", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help, required=True)
  allow = flags.DEFINE_bool(
      "allow_config_change", False,
      "Continue in a workdir whose recorded config differs in fields that determine the results "
      "(the record keeps the old config in its history). Without it such a rerun is refused."
  ) if allow_config_change else None
  distributed.add_flags(cpu_devices=1)
  return config, workdir, allow
