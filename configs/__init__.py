"""Sweep and experiment configs (ml_collections config files).

In a checkout this folder is the top-level package ``configs``; an installed featcon ships it as
``featcon.configs``. The config files import each other as ``configs.…`` (ml_collections loads
them by path, so they cannot use relative imports); in an installed featcon that name refers to
``featcon.configs`` once any featcon module is imported (``featcon/_configs_alias.py``).
"""
