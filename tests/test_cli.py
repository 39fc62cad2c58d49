"""featcon.cli.run, the wrapper of every entry point: one-line user errors (exit status 2), the
traceback behind --debug, bugs keep their traceback, log lines above the progress bars and the
shared flags in --help. Each case runs a real process (the wrapper owns sys.exit and absl's
global flags)."""
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A minimal entry point: its main raises what --raise names, or logs while a bar runs.
_SCRIPT = textwrap.dedent('''
    import logging, sys
    from absl import flags
    from featcon import cli, errors, progress
    _RAISE = flags.DEFINE_string("raise", "none", "What main raises.")
    flags.DEFINE_integer("count", 1, "A non-negative count.", lower_bound=0)

    def main(argv):
      if _RAISE.value == "config":
        raise errors.ConfigError("config field 'x' has value 3; allowed: 1 or 2")
      if _RAISE.value == "bug":
        raise RuntimeError("an unexpected failure")
      if _RAISE.value == "bars":
        logging.getLogger("featcon").setLevel(logging.INFO)
        bar = progress.Bar(4, "toy bar", unit="step")
        for i in range(4):
          bar()
          logging.getLogger("featcon").info("logged at step %d", i + 1)
        bar.close()
      print("main done")

    if __name__ == "__main__":
      cli.run(main)
''')


def _run(args, script=None, module=None):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  cmd = [sys.executable] + (["-m", module] if module else [str(script)]) + list(args)
  p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def script(tmp_path_factory):
  path = tmp_path_factory.mktemp("cli") / "entry.py"
  path.write_text(_SCRIPT)
  return path


def _lines(text):
  return [l for l in text.splitlines() if l.strip()]


def test_featcon_error_is_one_line_and_exit_2(script):
  rc, out, err = _run(["--raise=config"], script)
  assert rc == 2, err
  assert _lines(err) == ["error: config field 'x' has value 3; allowed: 1 or 2 "
                         "(--debug shows the traceback)"]


def test_debug_and_verbose_show_the_traceback(script):
  for flag in ("--debug", "--verbose"):
    rc, _, err = _run(["--raise=config", flag], script)
    assert rc == 2, err
    assert "Traceback (most recent call last)" in err and "errors.ConfigError" in err
    assert _lines(err)[-1] == "error: config field 'x' has value 3; allowed: 1 or 2"


def test_unexpected_exception_keeps_its_traceback(script):
  rc, _, err = _run(["--raise=bug"], script)
  assert rc == 1
  assert "Traceback (most recent call last)" in err
  assert _lines(err)[-1] == "RuntimeError: an unexpected failure"


def test_bad_flag_value_is_one_line(script):
  rc, _, err = _run(["--count=-3"], script)
  assert rc == 2
  assert len(_lines(err)) == 1 and _lines(err)[0].startswith("error: flag --count=-3"), err


def test_log_lines_are_written_above_the_bar(script):
  """Each log record starts a line of its own: tqdm clears the bar (``\\r``) before writing
  it. Written straight to stderr, a record would continue the bar's unterminated line."""
  rc, out, err = _run(["--raise=bars"], script)
  assert rc == 0 and "main done" in out, err
  logged = [l for l in err.split("\n") if "logged at step" in l]
  assert len(logged) == 4, err
  for line in logged:
    visible = line.split("\r")[-1]  # what a terminal shows after the last carriage return
    assert visible.startswith("I") and "toy bar" not in visible, repr(line)
    assert visible.endswith(f"logged at step {logged.index(line) + 1}")


def test_unknown_config_field_names_the_override_and_suggests():
  rc, _, err = _run(["--config=configs/theory.py:smoke", "--config.train.stpes=10",
                     "--workdir=unused"], module="experiments.sweep")
  assert rc == 2
  assert _lines(err) == ["error: --config.train.stpes: no config field 'train.stpes'; "
                         "Did you mean \"steps\" instead of \"stpes\"? "
                         "(--debug shows the traceback)"]


def test_bad_axis_is_one_line_without_the_help_text():
  rc, _, err = _run(["--config=configs/theory.py:smoke", "--axis=model.widht=8,16",
                     "--workdir=unused"], module="experiments.sweep")
  assert rc == 2
  lines = _lines(err)
  assert len(lines) == 1 and "unknown config field 'model.widht'" in lines[0], err
  assert "--workdir" not in err  # the usage text absl prints for a UsageError


def test_missing_config_file_is_one_line():
  rc, _, err = _run(["--config=configs/no_such_file.py", "--workdir=unused"],
                    module="experiments.sweep")
  assert rc == 2
  lines = _lines(err)
  assert len(lines) == 1 and lines[0].startswith("error: --config: the config file cannot be "
                                                 "loaded") and "no_such_file.py" in lines[0]


_STAGES = ["experiments.distill", "experiments.linear_probe", "experiments.evaluate"]


# The three share featcon.cli.stage_flags: distill is the quick tier's representative.
@pytest.mark.parametrize("module", params(_STAGES, _STAGES, slow=_STAGES[1:]))
def test_stage_help_lists_its_flags(module):
  rc, out, err = _run(["--help"], module=module)
  assert rc in (0, 1), err  # absl's --help exits with status 1
  text = out + err
  for flag in ("--config:", "--workdir:", "--cpu_devices:", "--[no]debug:"):
    assert flag in text, (flag, text)
