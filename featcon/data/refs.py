"""Data references of the deep-network stages: ``"name:split"`` (and ``"name:split:role"`` for
evaluation sets) resolved through the registry, several references read as one source, and the
training loader of a stage.
"""
from __future__ import annotations

import numpy as np

from featcon.data import registry
from featcon.data.loader import Loader
from featcon.data.sources import ConcatSource, MappedSource

EVAL_ROLES = ("id", "ood")  # the role of an evaluation set: in or out of distribution


def parse_ref(ref: str, field: str = "data set") -> tuple[str, ...]:
  """``"name:split"`` or ``"name:split:role"`` -> tuple, with a clear error otherwise."""
  parts = tuple(p.strip() for p in ref.split(":"))
  if len(parts) not in (2, 3) or not all(parts):
    raise ValueError(f"{field}={ref!r} must look like 'name:split' or 'name:split:role'")
  try:
    registry.get_spec(parts[0])
  except ValueError as e:
    raise ValueError(f"{field}={ref!r}: {e}") from None
  if len(parts) == 3 and parts[2] not in EVAL_ROLES:
    raise ValueError(f"{field}={ref!r}: role={parts[2]!r} is not allowed; allowed: "
                     f"{', '.join(EVAL_ROLES)}")
  return parts


def eval_refs(config) -> list[tuple[str, str, str]]:
  """The ``(name, split, role)`` triples of ``config.data.eval_sets``."""
  refs = [parse_ref(r, "config.data.eval_sets") for r in config.data.eval_sets.split(",")
          if r.strip()]
  for r in refs:
    if len(r) != 3:
      raise ValueError(f"config.data.eval_sets entry {':'.join(r)!r} needs a role "
                       f"(name:split:role, role in {EVAL_ROLES})")
  return refs


def subset(ds: registry.Dataset, limit: int, field: str = "limit") -> registry.Dataset:
  """The first ``limit`` examples of a fixed permutation (seed 0) of ``ds``, in their original
  order (``limit`` 0 or >= len: ``ds`` itself). Sets built from the same items in the same order
  (the real benchmark's shifts of one test set) keep the same items."""
  if limit < 0:
    raise ValueError(f"{field}={limit} is not allowed; allowed: 0 (all) or a positive count")
  n = len(ds.source)
  if limit == 0 or limit >= n:
    return ds
  idx = np.sort(np.random.default_rng(0).permutation(n)[:limit])
  return registry.Dataset(ds.name, ds.split, MappedSource(ds.source, idx, None), ds.num_classes,
                          ds.class_groups)


def open_dataset(config, ref: str, field: str = "data set", limit: int = 0) -> registry.Dataset:
  """One data set ("name:split"), or several ("a:train,b:train") read as one source; ``limit``
  > 0 keeps that many examples (:func:`subset`)."""
  if limit < 0:
    raise ValueError(f"limit={limit} for {field}={ref!r} is not allowed; allowed: 0 (all) or a "
                     "positive count")
  parts = [r.strip() for r in ref.split(",") if r.strip()]
  if not parts:
    raise ValueError(f"{field} is empty: give 'name:split' (comma-separated for several)")
  sets = []
  for part in parts:
    name, split = parse_ref(part, field)[:2]
    kw = {}
    kind = registry.get_spec(name).kind
    if kind == "digits":
      kw = dict(config.data.digits, image_size=config.data.image_size)
    elif kind in ("real", "real_c"):
      kw = dict(image_size=config.data.image_size)
    sets.append(registry.load(name, split, data_dir=config.data.data_dir or None, **kw))
  if len(sets) == 1:
    return subset(sets[0], limit, field)
  if len({(d.num_classes, d.class_groups) for d in sets}) != 1:
    raise ValueError(f"{field}={ref!r}: the data sets have different label spaces")
  return subset(registry.Dataset("+".join(d.name for d in sets), sets[0].split,
                                 ConcatSource([d.source for d in sets]), sets[0].num_classes,
                                 sets[0].class_groups), limit, field)


def train_loader(config, ds: registry.Dataset, batch_size: int, seed: int) -> Loader:
  """The shuffled, augmented training stream of ``ds`` (batches depend on (seed, step) only)."""
  return Loader(ds.source, batch_size, config.data.image_size, augment=config.data.augment,
                seed=seed, workers=config.data.workers)
