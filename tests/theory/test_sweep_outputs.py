"""What a sweep's workdir and console show besides the tidy table: the TensorBoard scalars of each
configuration (read back from the event files independently of the writer), the summary of a
single seed, and the timing lines of groups compiled in turn and ahead."""
import os

import numpy as np
import pandas as pd

from featcon.theory import results
from featcon.theory import runner
from featcon.theory import sweeps as sweep_lib
from tests.test_metric_writer import read_scalars
from tests.theory.test_surface import TINY


def test_sweep_writes_each_configurations_metrics_for_tensorboard(tmp_path):
  cfg = dict(TINY, sweep={"axes": "seed=0,1;model.activation=relu,tanh", "progress": False})
  wd = str(tmp_path / "wd")
  sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  df = pd.read_csv(os.path.join(wd, "results.csv"))
  tb = os.path.join(wd, "tensorboard")
  runs = sorted(os.listdir(tb))
  assert len(runs) == 4 == df["config_id"].nunique()
  for cid, sub in df.groupby("config_id"):
    first = sub.iloc[0]
    name = f"{cid:04d}_activation={first['activation']},seed={first['seed']}"
    assert name in runs, (name, runs)
    scalars = read_scalars(os.path.join(tb, name))
    for metric in ("id_risk", "ood_risk", "core_corr", "bg_corr", "bg_signed"):
      steps, values = zip(*scalars[metric])
      assert list(steps) == sub["step"].tolist() == [0, 10, 20]
      np.testing.assert_allclose(values, sub[metric], rtol=1e-6)
    # a metric logged as NaN (train_loss has no value before the first step) is left out there
    assert [s for s, _ in scalars["train_loss"]] == sub["step"][sub["train_loss"].notna()].tolist()
    assert not any(k in scalars for k in ("seed", "config_id", "step", "diverged_step"))
  # resuming rewrites the folder: every point once, no second events file
  sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  name = runs[0]
  assert len(os.listdir(os.path.join(tb, name))) == 1
  assert [s for s, _ in read_scalars(os.path.join(tb, name))["id_risk"]] == [0, 10, 20]
  assert not os.path.exists(tb + ".tmp")


def test_one_seed_summary_has_no_spread():
  rows = [{"config_id": c, "activation": a, "seed": s, "step": 20, "id_risk": v}
          for c, (a, s, v) in enumerate([("relu", 0, 0.25), ("tanh", 0, 0.5), ("tanh", 1, 0.75)])]
  df = pd.DataFrame(rows)
  df.attrs["swept"] = ["activation", "seed"]
  table = results.summary_table(df, metrics=("id_risk",))
  by = dict(zip(table["activation"], table["id_risk"]))
  assert by == {"relu": "0.2500", "tanh": "0.6250 ± 0.1250"}
  assert results.seed_note(table["seeds"]).endswith("rows of one seed: its value.")
  assert results.seed_note([1, 1]) == "one seed per row: its value."


def test_timing_lines_report_what_was_measured():
  first = {"wall_s": 16.2, "compile_s": 9.1, "compiled_ahead": False, "ahead_s": 5.1,
           "chunk": 4, "chunks": 1}
  assert runner.timing_line(first) == ("compiled in 9.10 s, trained in 7.10 s while the next "
                                       "group compiled (5.10 s of it); 1 chunk(s) of 4")
  last = {"wall_s": 0.037, "compile_s": 6.6, "compiled_ahead": True, "ahead_s": 0.0,
          "chunk": 4, "chunks": 1}
  assert runner.timing_line(last) == "compiled ahead in 6.60 s, trained in 37 ms; 1 chunk(s) of 4"
  assert [runner.seconds(s) for s in (12.34, 0.5, 0.0004)] == ["12.3 s", "0.50 s", "0 ms"]


def test_a_swept_step_count_keeps_each_configurations_own_end(tmp_path):
  """Configurations of different lengths: the trajectories are padded with NaN after each one's
  last log, and the summary and figures take each one's own final step."""
  cfg = dict(TINY, sweep={"axes": "train.steps=10,20", "progress": False})
  wd = str(tmp_path / "wd")
  df = sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  z = np.load(os.path.join(wd, "trajectories.npz"))
  risk = z["metrics/id_risk"]
  by_steps = dict(zip(z["swept/train.steps"].tolist(), range(2)))
  short, long = risk[by_steps[10]], risk[by_steps[20]]
  assert np.isfinite(long).all() and np.isnan(short[-1]) and np.isfinite(short[:-1]).all()
  for steps, i in by_steps.items():
    got = df[(df["config_id"] == i)].sort_values("step")["id_risk"].to_numpy()
    np.testing.assert_array_equal(got, risk[i][:len(got)])
  table = results.summary_table(df, metrics=("id_risk",))
  final = results.final_rows(df)
  assert sorted(final["step"]) == [10, 20] and len(table) == 2
  for steps, cell in zip(table["steps"], table["id_risk"]):
    want = final[final["steps"] == steps]["id_risk"].iloc[0]
    assert cell == f"{want:.4f}"
  md = open(os.path.join(wd, "summary.md")).read()
  assert "final step 10–20" in md
  assert os.path.exists(os.path.join(wd, "curves.png"))
