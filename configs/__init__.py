"""Sweep and experiment configs (ml_collections config files).

In a checkout this folder is the top-level package ``configs``; an installed featcon ships it as
``featcon.configs``. The config files import each other as ``configs.…`` (ml_collections loads
them by path, so they cannot use relative imports); importing ``featcon.configs`` therefore
also names it ``configs`` when no other ``configs`` is importable (``featcon.cli``).
"""
if __name__ != "configs":
  from featcon import cli  # noqa: F401  pylint: disable=unused-import
