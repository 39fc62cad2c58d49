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
"""
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from featcon import distributed

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


def run(main, flags_parser=None):
  """``absl.app.run(main)`` with the ``--config`` file resolved from any directory.

  Args:
    main: the entry point's ``main(argv)``.
    flags_parser: an ``absl.app.run`` flags parser (default: absl's own).
  """
  kwargs = {} if flags_parser is None else {"flags_parser": flags_parser}
  app.run(main, argv=resolve_argv(sys.argv), **kwargs)


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
