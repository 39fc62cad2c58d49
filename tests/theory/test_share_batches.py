"""Online configurations that draw the same batches share them (``sweep.share_batches``):
which chunks qualify, and that the shared program computes the flat program's numbers."""
from types import SimpleNamespace

import numpy as np
import pytest

import featcon
from featcon.theory import plan as plan_lib
from featcon.theory import program
from featcon.theory import runner
from tests.helpers import merge, sweep_on_host_devices

BASE = {"data": {"d": 24, "k_core": 4, "k_bg": 4, "n_eval": 256, "regime": "online"},
        "model": {"width": 16}, "train": {"steps": 120, "log_every": 40, "lr": 5e-2,
                                          "batch_size": 8}}
METRICS = ("id_risk", "ood_risk", "bg_signed", "bg_corr", "train_loss")


def _groups(**over):
  cfg = merge(BASE, over)
  return plan_lib.make_groups([featcon.resolve_config(c) for _, c in plan_lib.expand(cfg)])


def _fake(seeds, rhos=None, regime="online"):
  """A stand-in for a group: batch_sharing reads only these attributes."""
  seeds = np.asarray(seeds)
  rhos = np.zeros(len(seeds)) if rhos is None else np.asarray(rhos)
  return SimpleNamespace(static=SimpleNamespace(regime=regime), n_trainings=len(seeds),
                         dyns=SimpleNamespace(seed=seeds, bg_label_corr=rhos))


def _permuted(group, order):
  """The group with its trainings in ``order`` (same configurations, other layout)."""
  order = np.asarray(order)
  dyns = program.Dynamic(*(np.asarray(a)[order] for a in group.dyns))
  return plan_lib.Group(group.static, [group.indices[i] for i in order], dyns)


def test_batch_sharing_finds_blocked_and_strided_layouts():
  S = runner.Sharing
  assert runner.batch_sharing(_fake([0, 0, 0, 1, 1, 1]), 6, 1) == S(3, True)
  assert runner.batch_sharing(_fake([0, 1, 0, 1, 0, 1]), 6, 1) == S(3, False)
  assert runner.batch_sharing(_fake([0, 0, 1, 1, 2, 2, 3, 3]), 4, 2) == S(2, True)
  # equal seeds, different rho: different batches
  assert runner.batch_sharing(_fake([0] * 4, [0, 0, .5, .5]), 4, 1) == S(2, True)
  assert runner.batch_sharing(_fake([0] * 4, [0, .5, 0, .5]), 4, 1) == S(2, False)
  assert runner.batch_sharing(_fake([0] * 4, [0, .5, .5, 0]), 4, 1) is None
  # the padded last chunk repeats the last configuration: 5 of seed 0 + pad of 3 -> blocks of 4
  assert runner.batch_sharing(_fake([0] * 4 + [1]), 4, 2) == S(4, True)
  assert runner.batch_sharing(_fake([0, 0, 1]), 3, 1) is None  # no divisor of 3 shares
  assert runner.batch_sharing(_fake([0, 1, 2, 3]), 4, 1) is None
  assert runner.batch_sharing(_fake([0, 0, 0, 0], regime="fixed"), 4, 1) is None
  # every chunk must follow the layout the program is compiled for
  assert runner.batch_sharing(_fake([0, 0, 1, 1, 2, 3, 4, 5]), 4, 2) is None


def _run(group, share, max_chunk=4096):
  out, div, _ = runner.run_group(group, runner.Limits(max_chunk=max_chunk, share_batches=share),
                                 progress=False)
  return out, div


def _assert_close(a, b):
  for k in METRICS:
    # float32 rounding of a different (but equal in exact arithmetic) program: measured ≤ 2e-6
    # relative here; a wrong batch or stream would move these by O(1).
    np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-5, err_msg=k)


@pytest.mark.parametrize("case", ["blocked", "strided", "padded", "oracle", "input_path"])
def test_shared_batches_equal_the_flat_program(case):
  over = dict(seed=[0, 1], train={"lr": [0.02, 0.05, 0.1]})
  max_chunk, order, expect = 4096, None, None
  if case == "padded":
    max_chunk = 3   # 5 configurations: 2 chunks of 3, the last one padded with its last
  if case == "oracle":
    over["train"]["oracle_projection"] = True
  if case == "input_path":
    over["train"]["path"] = "input"
  (group,) = _groups(**over)
  seeds = np.asarray(group.dyns.seed)
  order = np.argsort(seeds, kind="stable")           # seed 0's three, then seed 1's
  if case == "strided":
    order = order.reshape(2, 3).T.reshape(-1)         # seeds 0, 1, 0, 1, 0, 1
  if case == "padded":
    order = order[:5]
  group = _permuted(group, order)
  size, n_chunks = runner.chunking(group, runner.Limits(max_chunk=max_chunk), 1)
  sharing = runner.batch_sharing(group, size, n_chunks)
  if case == "strided":
    assert sharing is not None and not sharing.blocked
  else:
    assert sharing is not None and sharing.blocked and sharing.per_batch == 3
  shared, div_s = _run(group, True, max_chunk)
  flat, div_f = _run(group, False, max_chunk)
  np.testing.assert_array_equal(div_s, div_f)
  _assert_close(shared, flat)
  # the learning rates differ within a stream: its configurations did not collapse into one
  assert np.ptp(shared["train_loss"][:, -1]) > 1e-3


def test_sweep_option_reaches_the_runner():
  cfg = merge(BASE, dict(seed=[0, 1], train={"lr": [0.02, 0.05]}))
  on = featcon.sweep(cfg)
  off = featcon.sweep(merge(cfg, {"sweep": {"share_batches": False}}))
  assert len(on) == len(off)
  for k in METRICS:
    np.testing.assert_allclose(on[k].values, off[k].values, rtol=2e-4, atol=2e-5, err_msg=k)
  with pytest.raises(ValueError, match="sweep.share_batches"):
    featcon.sweep(merge(cfg, {"sweep": {"share_batches": "yes"}}))


@pytest.mark.slow
def test_shared_batches_sharded_over_two_devices(tmp_path):
  """Two forced host devices split each stream's configurations: same numbers as one."""
  cfg = merge(BASE, dict(seed=[0, 1], train={"lr": [0.02, 0.05, 0.1, 0.2]}))
  outs = sweep_on_host_devices(tmp_path, cfg, METRICS)
  for k in METRICS:
    np.testing.assert_allclose(outs[1][k], outs[0][k], rtol=2e-4, atol=2e-5,
                               err_msg=k)
