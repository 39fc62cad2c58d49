"""What the user sees of the simulator: axes as strings (CLI and Python), progress output,
the automatic log interval, the Markdown summary and typed swept arrays."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import featcon
from featcon.theory import axes as axes_lib
from featcon.theory import plan as plan_lib
from featcon.theory import config as config_lib
from featcon.theory import results
from featcon.theory import sweeps as sweep_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = {"data": {"d": 16, "k_core": 2, "k_bg": 2, "n_train": 32, "n_eval": 64},
        "model": {"width": 4}, "train": {"steps": 20, "log_every": 10, "lr": 5e-2}}


def test_axis_strings_are_typed_like_the_defaults():
  plan = plan_lib.make_plan(TINY, ["seed=0,1,2", "model.activation=relu,gelu",
                                   "train.lr=1e-2,0.1", "model.bias=true,no",
                                   "data.core_radii=(1,2),(1,3)"])
  ax = plan.axes
  assert ax["seed"] == [0, 1, 2] and all(type(s) is int for s in ax["seed"])
  assert ax["model.activation"] == ["relu", "gelu"]
  assert ax["train.lr"] == [0.01, 0.1] and ax["model.bias"] == [True, False]
  assert ax["data.core_radii"] == [(1.0, 2.0), (1.0, 3.0)]
  assert plan.record["train"]["steps"] == 20 and plan.record["seed"] == [0, 1, 2]
  # dict form and list literals; a pinned field stops being an axis and runs its value
  plan = plan_lib.make_plan(dict(TINY, seed=[0, 1]), {"train.lr": "[0.1, 0.2]"}, pinned=["seed"])
  assert list(plan.axes) == ["train.lr"] and plan.axes["train.lr"] == [0.1, 0.2]
  assert len(plan.points) == 2 and plan.points[0][1]["seed"] == 0
  for bad, msg in ((["seed=0,x"], r"'seed' has value 'x'; allowed: an integer"),
                   (["train.lr=fast"], r"'train.lr' has value 'fast'; allowed: a number"),
                   (["model.bias=maybe"], r"'model.bias' has value 'maybe'; allowed: true or false"),
                   (["model.widht=3"], r"unknown config field 'model.widht'"),
                   (["seed"], r"expected '<field>=<v1>,<v2>,...'")):
    with pytest.raises(ValueError, match=msg):
      plan_lib.make_plan(TINY, bad)


def test_sweep_axes_string_and_list_form_plan_alike():
  """``sweep.axes`` (a string), the list form and ``axes=`` give the same plan; the product
  runs in alphabetical order of the fields, zip groups first."""
  a = plan_lib.make_plan(dict(TINY, sweep={"axes": "seed=0,1;model.width=2,4"}))
  b = plan_lib.make_plan(dict(TINY, seed=[0, 1], model={"width": [2, 4]}))
  c = plan_lib.make_plan(TINY, axes="model.width=2,4;seed=0,1")
  assert a.points == b.points == c.points and a.record == b.record == c.record
  assert [tuple(s.values()) for s, _ in a.points] == [(2, 0), (2, 1), (4, 0), (4, 1)]
  assert list(a.axes) == ["model.width", "seed"]
  # the config of each point is a full scalar config: the axis values set, the rest defaults
  assert a.points[1][1]["seed"] == 1 and a.points[1][1]["train"]["optimizer"] == "sgd"
  assert axes_lib.parse_axes(axes_lib.format_axes(a.axes)) == list(a.axes.items())
  with pytest.raises(ValueError, match=r"'sweep.axes' names 'seed' twice"):
    plan_lib.make_plan(dict(TINY, sweep={"axes": "seed=0;seed=1"}))
  with pytest.raises(ValueError, match=r"unknown config field 'sweep.axis'"):
    plan_lib.make_plan(dict(TINY, sweep={"axis": "seed=0"}))


def test_zipped_axes_from_strings():
  cfg = dict(TINY, sweep={"zip": [("train.lr", "train.weight_decay")]})
  ex = plan_lib.expand(cfg, ["train.lr=0.1,0.2", "train.weight_decay=0,0.01", "seed=0,1"])
  assert sorted((s["train.lr"], s["train.weight_decay"], s["seed"]) for s, _ in ex) == [
      (0.1, 0.0, 0), (0.1, 0.0, 1), (0.2, 0.01, 0), (0.2, 0.01, 1)]
  with pytest.raises(ValueError, match="different lengths"):
    plan_lib.expand(cfg, ["train.lr=0.1,0.2", "train.weight_decay=0"])
  # a pinned zipped field keeps a one-value axis: its partners must be given one value too
  pinned = plan_lib.make_plan(cfg, ["train.lr=0.1,0.2", "train.weight_decay=0.01"],
                              pinned=["train.lr"])
  assert pinned.axes == {"train.lr": [0.05], "train.weight_decay": [0.01]}
  with pytest.raises(ValueError, match="different lengths"):
    plan_lib.make_plan(cfg, ["train.lr=0.1,0.2", "train.weight_decay=0,0.01"],
                       pinned=["train.lr"])


def test_auto_log_every_divides_steps():
  for steps, want in ((20000, 1000), (100, 5), (4000, 200), (1001, 77), (1, 1), (7, 1)):
    got = config_lib.auto_log_every(steps)
    assert steps % got == 0 and got == want, (steps, got)
  assert featcon.resolve_config({"train": {"steps": 100}}).train.log_every == 5
  assert featcon.resolve_config(None).train.log_every == 1000
  with pytest.raises(ValueError, match="a divisor of train.steps = 100"):
    featcon.resolve_config({"train": {"steps": 100, "log_every": 30}})


def test_simulate_progress_on_and_off(capfd):
  cfg = {**TINY, "train": {"steps": 20, "lr": 5e-2}}  # log_every automatic: 1
  r = featcon.simulate(cfg, progress=False)
  out, err = capfd.readouterr()
  assert out == "" and err == ""
  assert len(r.metrics["step"]) == 21
  featcon.simulate(cfg)
  _, err = capfd.readouterr()
  assert "simulate: 20 steps" in err and "compile" in err and "20/20" in err


def test_sweep_progress_on_and_off(capfd):
  featcon.sweep(TINY, axes=["seed=0,1"], progress=False)
  out, err = capfd.readouterr()
  assert out == "" and err == ""
  df = featcon.sweep(TINY, axes=["seed=0,1"])
  _, err = capfd.readouterr()
  assert "compiling group 1/1 (2 configs)" in err and "compiled group 1/1" in err
  assert "2/2" in err  # the bar: two log intervals
  assert sorted(set(df["seed"])) == [0, 1]


def _parse_pipe_table(text):
  lines = [l for l in text.splitlines() if l.startswith("|")]
  cells = [[c.strip() for c in l.strip().strip("|").split("|")] for l in lines]
  header, rule, rows = cells[0], cells[1], cells[2:]
  assert all(set(r) <= set(":-") and "---" in r for r in rule) and len(rule) == len(header)
  assert all(len(r) == len(header) for r in rows)
  return header, rows


def test_markdown_table_and_typed_swept_arrays(tmp_path):
  cfg = dict(TINY, sweep={"axes": "seed=0,1;model.width=2,4;train.lr=0.05,0.1;"
                                  "model.activation=relu,tanh",
                          "zip": [("train.lr", "model.activation")], "progress": False})
  wd = str(tmp_path / "wd")
  sweep_lib.run(cfg, workdir=wd, log=lambda s: None)
  header, rows = _parse_pipe_table(open(os.path.join(wd, "summary.md")).read())
  assert set(header[:4]) == {"width", "lr", "activation", "seeds"} and "ood_risk" in header
  assert len(rows) == 4 and {r[header.index("width")] for r in rows} == {"2", "4"}
  assert all(r[header.index("seeds")] == "2" for r in rows) and all("±" in r[header.index("id_risk")] for r in rows)
  with np.load(os.path.join(wd, "trajectories.npz")) as z:
    assert z["swept/seed"].dtype == np.int64 and z["swept/model.width"].dtype == np.int64
    assert z["swept/train.lr"].dtype == np.float64
    assert z["swept/model.activation"].dtype.kind == "U"
    assert sorted(set(z["swept/model.width"].tolist())) == [2, 4]
  assert results.swept_array([(1.0, 2.0), (1.0, 3.0)]).shape == (2, 2)
  assert results.swept_array([True, False]).dtype == bool


@pytest.mark.slow
def test_cli_axes_and_swept_override(tmp_path):
  wd = tmp_path / "cli"
  p = subprocess.run([sys.executable, "-m", "experiments.sweep",
                      "--config=configs/theory.py:smoke", f"--workdir={wd}", "--config.seed=5",
                      "--axis=model.activation=relu,tanh", "--axis=model.width=8",
                      "--config.train.steps=20"],
                     capture_output=True, text=True, cwd=ROOT, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  assert "Unable to initialize backend" not in p.stderr
  df = pd.read_csv(wd / "results.csv")
  assert set(df["activation"]) == {"relu", "tanh"} and set(df["width"]) == {8}
  assert "seed" not in df.columns and set(df["step"]) == {0, 20}
  meta = json.loads((wd / "config.json").read_text())
  assert meta["config"]["seed"] == 5
  # a bad value is refused before anything runs, naming field, value and what is allowed
  p = subprocess.run([sys.executable, "-m", "experiments.sweep",
                      "--config=configs/theory.py:smoke", f"--workdir={tmp_path / 'bad'}",
                      "--axis=seed=0,one"], capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert p.returncode != 0
  assert "config field 'seed' has value 'one'; allowed: an integer" in p.stderr
  assert not (tmp_path / "bad").exists()
