"""In an installed featcon, the name ``configs`` refers to ``featcon.configs``.

Config files import each other as ``configs.…`` because ml_collections loads them by path, so
they cannot use relative imports. In a checkout ``configs/`` is a top-level package; an
installed featcon ships it as ``featcon.configs`` only (``setup.py``, ``package_dir``).
``featcon/__init__.py`` runs :func:`install` first thing, so importing any featcon module
(in any order) makes ``import configs.distill.base`` work from any directory. Nothing changes
where a top-level ``configs`` is importable (a checkout, the current directory).
"""
import importlib
import importlib.abc
import importlib.util
import sys


class _ConfigsAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Imports ``configs`` and its submodules as the very modules of the same name under featcon."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name == "configs" or name.startswith("configs."):
      if importlib.util.find_spec("featcon." + name) is None:
        return None
      return importlib.util.spec_from_loader(name, self)
    return None

  def create_module(self, spec):
    return importlib.import_module("featcon." + spec.name)

  def exec_module(self, module):
    del module  # already executed as featcon.configs[.X]


def install():
  """In an installed featcon (no top-level ``configs``), makes ``configs`` name featcon.configs."""
  if any(isinstance(f, _ConfigsAlias) for f in sys.meta_path):
    return
  if "configs" in sys.modules or importlib.util.find_spec("configs") is not None:
    return
  sys.meta_path.insert(0, _ConfigsAlias())
