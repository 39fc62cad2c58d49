"""Batching that keeps the accelerator fed: deterministic per-step batches, threaded decoding,
background prefetch and ``jax.device_put`` onto a data-parallel sharding.

The batch of training step ``s`` depends only on ``(seed, s)``: sample position ``p = s*B + j``
reads ``perm_epoch[p mod N]`` with ``epoch = p // N``. Resuming at step ``s`` therefore sees the
same stream as an uninterrupted run.
"""
from __future__ import annotations

import concurrent.futures
import queue
import threading
from typing import Iterator

import numpy as np

from featcon import distributed
from featcon.data import preprocess
from featcon.data.sources import DataSource


class Loader:
  """Batches of ``{"image": f32 (B, R, R, 3), "label": i32 (B,)}`` from a data source.

  Args:
    source: a data source (``__len__``, ``__getitem__``).
    batch_size: global batch size.
    resolution: output side R (CLIP preprocessing: resize short side, centre crop).
    augment: training augmentation (see preprocess.AUGMENTATIONS); "none" for evaluation.
    seed: shuffling and augmentation seed.
    workers: threads decoding examples.
  """

  def __init__(self, source: DataSource, batch_size: int, resolution: int, *,
               augment: str = "none", seed: int = 0, workers: int = 2):
    if len(source) == 0:
      raise ValueError("cannot batch an empty data source")
    self.source, self.batch_size, self.resolution = source, int(batch_size), int(resolution)
    self.augment, self.seed = augment, int(seed)
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    self._perms: dict[int, np.ndarray] = {}

  def _perm(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) > 4:
        self._perms.clear()
      rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
      self._perms[epoch] = rng.permutation(len(self.source))
    return self._perms[epoch]

  def _example(self, index: int, rng_key) -> tuple[np.ndarray, int]:
    ex = self.source[int(index)]
    if rng_key is None:
      img = preprocess.clip_preprocess(ex["image"], self.resolution)
    else:
      rng = np.random.default_rng(np.random.SeedSequence(rng_key))
      img = preprocess.train_augment(ex["image"], self.resolution, rng, self.augment)
    return img, ex["label"]

  def _assemble(self, indices, keys) -> dict[str, np.ndarray]:
    out = list(self._pool.map(self._example, indices, keys))
    return {"image": np.stack([o[0] for o in out]).astype(np.float32),
            "label": np.asarray([o[1] for o in out], np.int32)}

  def train_batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
    """The (shuffled, augmented) batch of training step ``step``, or its ``rows`` only (the
    rest is not decoded)."""
    pos, idx = self.batch_indices(step, rows)
    keys = [None if self.augment == "none" else (self.seed, 1, int(p)) for p in pos]
    return self._assemble(idx, keys)

  def batch_indices(self, step: int, rows: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, source indices)`` of the batch of training step ``step`` (or its
    ``rows``): position ``p = step * B + j`` reads ``perm_{p // N}[p mod N]``."""
    n, b = len(self.source), self.batch_size
    pos = step * b + np.arange(b)[rows if rows is not None else slice(None)]
    return pos, np.asarray([self._perm(int(p // n))[p % n] for p in pos], np.int64)

  def train_iter(self, start_step: int, num_steps: int, sharding=None,
                 prefetch: int = 2) -> Iterator[dict]:
    """Batches for steps ``start_step .. num_steps-1``, built ahead in a thread and put on device.

    With several processes (``jax.distributed``) each process decodes only the rows of the
    global batch that its devices hold and the result is one global array.
    """
    rows = _rows(sharding, self.batch_size)
    return _prefetch((self.train_batch(s, rows) for s in range(start_step, num_steps)),
                     sharding, prefetch, self.batch_size)

  def eval_iter(self, sharding=None, prefetch: int = 2) -> Iterator[dict]:
    """Every example once, in order; the last batch is padded and carries ``valid`` (bool)."""
    n, b = len(self.source), self.batch_size
    rows = _rows(sharding, b) or slice(0, b)
    def gen():
      for start in range(0, n, b):
        pos = start + np.arange(b)[rows]
        valid = pos < n
        # Padding repeats the last example (of the data set, for a process past its end).
        idx = np.minimum(pos, min(start + b, n) - 1)
        batch = self._assemble(idx, [None] * len(idx))
        batch["valid"] = valid
        yield batch
    return _prefetch(gen(), sharding, prefetch, b)


def _rows(sharding, batch_size: int) -> slice | None:
  """This process's rows of a global batch on ``sharding`` (None: all of them)."""
  if sharding is None or sharding.is_fully_addressable:
    return None
  return distributed.local_rows(sharding, batch_size)


def _prefetch(batches, sharding, size: int, global_rows: int = 0):
  """Run ``batches`` in a background thread, ``size`` ahead, and put them on ``sharding`` (a
  process's rows of a ``global_rows`` batch when the sharding spans several processes)."""
  q: queue.Queue = queue.Queue(maxsize=max(1, size))
  sentinel = object()
  stop = threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        q.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False  # the consumer left: end the thread instead of blocking forever

  def worker():
    try:
      for b in batches:
        if sharding is not None:
          b = distributed.from_local_rows(b, sharding, global_rows)
        if not put(b):
          return
      put(sentinel)
    except BaseException as e:  # pylint: disable=broad-except
      put(e)

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is sentinel:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    # The consumer stopped (finished, an error, Ctrl-C, the iterator closed): end the thread
    # before returning, so that no batch is being built or put on a device while the
    # interpreter shuts down (a fatal abort inside XLA otherwise).
    stop.set()
    if thread is not threading.current_thread():
      thread.join(timeout=60)
