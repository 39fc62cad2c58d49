"""tests/conftest.py: under CI=true a skip for a missing module fails the session."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, ci):
  (tmp_path / "test_missing.py").write_text(
      "import pytest\npytest.importorskip('no_such_module_for_featcon')\n"
      "def test_a():\n  pass\n")
  (tmp_path / "test_gpu.py").write_text(
      "import pytest\ndef test_b():\n  pytest.skip('needs a GPU')\ndef test_c():\n  pass\n")
  env = {k: v for k, v in os.environ.items() if k != "CI"}
  if ci:
    env["CI"] = "true"
  return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest",
                         "-p", "no:cacheprovider", str(tmp_path)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def test_missing_module_skip_fails_under_ci(tmp_path):
  r = _run(tmp_path, ci=True)
  assert r.returncode == 1, r.stdout
  assert "no_such_module_for_featcon" in r.stdout and "1 test(s) skipped" in r.stdout
  assert "test_gpu.py" not in r.stdout.split("CI=true:")[1]  # an allowed skip


def test_skips_pass_outside_ci(tmp_path):
  r = _run(tmp_path, ci=False)
  assert r.returncode == 0, r.stdout
