"""Packaging: the wheel installs only the featcon name, its entry points run from any
directory, and setup.py's ranges resolve on the package index without the constraints file."""
import email
import json
import os
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("sweep", "analyze", "distill", "evaluate", "linear_probe", "digits_benchmark",
           "real_experiment")
_NETWORK_ERRORS = ("NewConnectionError", "Network is unreachable", "Temporary failure in name",
                   "Could not fetch URL", "ConnectTimeout", "ReadTimeout", "ProxyError",
                   "Max retries exceeded", "No route to host")


def _build_isolation_flags():
  """Build with this interpreter's setuptools when it can write wheels itself (>= 70.1)."""
  try:
    import setuptools  # pylint: disable=g-import-not-at-top
  except ImportError:
    return []
  major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
  return ["--no-build-isolation"] if (major, minor) >= (70, 1) else []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  out = tmp_path_factory.mktemp("wheel")
  build = tmp_path_factory.mktemp("src")
  # Build from a copy of the sources setup.py needs, so no build/ or egg-info lands in the tree.
  subprocess.run(["cp", "-r", os.path.join(ROOT, "setup.py"), os.path.join(ROOT, "featcon"),
                  os.path.join(ROOT, "experiments"), os.path.join(ROOT, "configs"), str(build)],
                 check=True)
  p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *_build_isolation_flags(),
                      "-q", "-w", str(out), str(build)], capture_output=True, text=True,
                     timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  (whl,) = out.glob("featcon-*.whl")
  return whl


def _wheel_text(whl, suffix):
  z = zipfile.ZipFile(whl)
  (name,) = [n for n in z.namelist() if n.endswith(suffix)]
  return z.read(name).decode()


def _requirements(whl):
  """The wheel's own requirements (``Requires-Dist`` without the extras')."""
  meta = email.message_from_string(_wheel_text(whl, ".dist-info/METADATA"))
  return [Requirement(r) for r in meta.get_all("Requires-Dist") if "extra ==" not in r]


def _pip(python, args, timeout):
  """``python -m pip <args>``; skips the test when the package index cannot be reached."""
  try:
    p = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True,
                       timeout=timeout)
  except subprocess.TimeoutExpired:
    pytest.skip(f"pip did not finish within {timeout} s (no network?)")
  if p.returncode != 0 and any(e in p.stderr + p.stdout for e in _NETWORK_ERRORS):
    pytest.skip(f"package index unreachable: {p.stderr.strip().splitlines()[-1]}")
  assert p.returncode == 0, p.stderr[-3000:]


def test_wheel_installs_only_the_featcon_name(wheel):
  names = zipfile.ZipFile(wheel).namelist()
  top = {n.split("/")[0] for n in names}
  assert {t for t in top if not t.endswith(".dist-info")} == {"featcon"}, top
  for f in ("featcon/experiments/sweep.py", "featcon/configs/theory.py",
            "featcon/configs/distill/base.py", "featcon/cli.py",
            "featcon/models/imagenet_classes.txt", "featcon/data/class_lists/imagenet_wnids.txt"):
    assert f in names, f
  assert not any("__pycache__" in n for n in names)
  scripts = _wheel_text(wheel, ".dist-info/entry_points.txt")
  for s in SCRIPTS:
    assert f"featcon-{s.replace('_', '-')} = featcon.experiments.{s}:run" in scripts, s


@pytest.mark.slow
def test_installed_wheel_runs_the_smoke_sweep_from_another_directory(wheel, tmp_path):
  target = tmp_path / "site"
  p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                      str(target), str(wheel)], capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-3000:]
  # The dependencies come from this interpreter's site-packages; featcon from the wheel only
  # (the working directory is elsewhere, so the checkout is not on the path).
  env = {**os.environ, "PYTHONPATH": str(target)}
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  check = subprocess.run(
      [sys.executable, "-c",
       "import featcon, featcon.configs.distill.digits as d, featcon.experiments.distill; "
       "print(featcon.__file__); print(d.get_config('tiny-rn').model.student)"],
      capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)
  assert check.returncode == 0, check.stderr[-3000:]
  first, second = check.stdout.splitlines()[:2]
  assert first.startswith(str(target)), first
  assert second == "tiny-rn"
  wd = tmp_path / "run"
  p = subprocess.run([str(target / "bin" / "featcon-sweep"), "--config=configs/theory.py:smoke",
                      f"--workdir={wd}", "--config.train.steps=20", "--config.train.log_every=10",
                      "--axis=seed=0,1", "--cpu_devices=1"],
                     capture_output=True, text=True, cwd=elsewhere, env=env, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  assert (wd / "results.csv").exists() and (wd / "summary.md").exists()
  cfg = json.loads((wd / "config.json").read_text())["config"]
  assert cfg["train"]["steps"] == 20 and cfg["seed"] == [0, 1]
  # --helpfull (absl exits 1 after printing it) names the default config inside the package
  h = subprocess.run([str(target / "bin" / "featcon-distill"), "--helpfull"],
                     capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300)
  assert "Traceback" not in h.stderr, h.stderr[-3000:]
  assert os.path.join("featcon", "configs", "distill", "digits.py") in h.stdout


def test_config_paths_resolve_from_any_directory(tmp_path, monkeypatch):
  from featcon import cli  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(tmp_path)
  resolved = cli.config_path("configs/theory.py:smoke")
  assert resolved == os.path.join(ROOT, "configs", "theory.py") + ":smoke"
  assert cli.config_path("configs/nonexistent.py") == "configs/nonexistent.py"
  (tmp_path / "configs").mkdir()
  (tmp_path / "configs" / "theory.py").write_text("")
  assert cli.config_path("configs/theory.py") == "configs/theory.py"  # the local file wins
  argv = cli.resolve_argv(["prog", "--config", "configs/analyze.py:smoke",
                           "--config.train.steps=3"])
  assert argv == ["prog", "--config", f"{ROOT}/configs/analyze.py:smoke",
                  "--config.train.steps=3"]
  argv = cli.resolve_argv(["prog", "--config=configs/theory.py:smoke", "--config.seed=1"])
  assert argv == ["prog", "--config=configs/theory.py:smoke", "--config.seed=1"]


def test_setup_states_ranges_and_the_newest_allowed_versions_resolve(wheel, tmp_path):
  """The wheel's requirements are ranges (never exact pins), and without the constraints file
  they resolve on the package index to versions inside them."""
  reqs = _requirements(wheel)
  assert {r.name for r in reqs} >= {"jax", "numpy", "pandas", "flax", "optax"}
  for r in reqs:
    ops = {s.operator for s in r.specifier}
    assert ops == {">=", "<"}, r
  report = tmp_path / "report.json"
  _pip(sys.executable, ["install", "--dry-run", "--ignore-installed", "--quiet", "--report",
                        str(report), "--timeout", "20", *map(str, reqs)], timeout=600)
  chosen = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
            for i in json.loads(report.read_text())["install"]}
  for r in reqs:
    version = chosen.get(r.name.lower().replace("_", "-"))
    assert version is not None and r.specifier.contains(version, prereleases=True), (r, version)


@pytest.mark.slow
def test_fresh_venv_installs_the_wheel_with_newest_allowed_versions_and_runs(wheel, tmp_path):
  """A new virtual environment, the wheel installed without the constraints file (pip picks
  the newest versions setup.py allows), then featcon imports and simulates."""
  env_dir = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
  py = str(env_dir / "bin" / "python")
  _pip(py, ["install", "-q", "--timeout", "20", str(wheel)], timeout=900)
  code = ("import json, featcon, importlib.metadata as md\n"
          "r = featcon.simulate({'data': {'d': 16, 'k_core': 2, 'k_bg': 2, 'n_train': 32,"
          " 'n_eval': 64}, 'model': {'width': 8}, 'train': {'steps': 20, 'log_every': 10}},"
          " progress=False)\n"
          "print(json.dumps({'file': featcon.__file__, 'id_risk': float(r.final['id_risk']),"
          " 'versions': {n: md.version(n) for n in ('jax', 'numpy', 'pandas', 'flax')}}))\n")
  run = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  out = json.loads(run.stdout.strip().splitlines()[-1])
  assert out["file"].startswith(str(env_dir)), out["file"]
  assert 0.0 <= out["id_risk"] < 2.0
  ranges = {r.name.lower(): r.specifier for r in _requirements(wheel)}
  for name, version in out["versions"].items():
    assert ranges[name].contains(version, prereleases=True), (name, version)
