"""Suite-wide setup: the ``slow`` and ``heavy`` markers and, under ``CI=true``, no silent skips.

* ``slow``: the end-to-end runs (entry points in subprocesses, two processes or devices, fresh
  installs, the reduced real-teacher experiment, whole sweeps against ``simulate``), the
  full-size CLIP parity tests, the non-representative cases of parametrized families
  (``tests.helpers.params``) and single tests over ~30 s cold. ``make test`` deselects them
  (``-m "not slow"``, the quick tier); ``make test-all``, CI's command, runs them
  (docs/testing.md lists them).
* ``heavy``: tests too slow for the 2-core CI budget (full-size parity of the largest CLIP
  towers, exact parameter counts of the largest configs). Deselected by default; run them with
  ``python -m pytest -m heavy tests`` (docs/testing.md).
* With ``CI=true`` (set by ``.ci/run``'s environment) the session fails if any test or module
  was skipped, unless the skip reason matches :data:`ALLOWED_SKIPS`: ``make test`` installs
  every extra, so a skip for a missing module means a broken environment that would otherwise
  pass with the parity tests silently not run.
* The theory programs compile at XLA's backend optimisation level 0
  (``FEATCON_THEORY_XLA_OPT_LEVEL``, docs/testing.md) unless the environment sets a level.
"""
import os
import re

import pytest

os.environ.setdefault("XLA_FLAGS", "")
# The theory programs of the tests run briefly and are each compiled once: XLA's backend
# optimisation level 0 compiles them faster than it slows them (featcon.theory.train.
# compiler_options); subprocesses inherit it. A value the user set is kept.
os.environ.setdefault("FEATCON_THEORY_XLA_OPT_LEVEL", "0")

# Documented skips that are expected even with every extra installed (regexes on the reason).
ALLOWED_SKIPS = (
    r"needs a GPU",
    r"needs an accelerator",
)

_SKIPS = []


def pytest_addoption(parser):
  parser.addoption("--run-heavy", action="store_true", default=False,
                   help="also run the tests marked heavy (deselected by default)")


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: end-to-end runs, full-size CLIP parity, non-representative cases and "
      "single tests over ~30 s; deselected by make test, run by make test-all (CI)")
  config.addinivalue_line(
      "markers", "heavy: too slow for CI (largest CLIP towers); deselected unless --run-heavy "
      "or -m heavy")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--run-heavy") or "heavy" in (config.option.markexpr or ""):
    return
  keep, drop = [], []
  for item in items:
    (drop if item.get_closest_marker("heavy") else keep).append(item)
  if drop:
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


def _record(report):
  if report.skipped and not getattr(report, "wasxfail", None):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    _SKIPS.append((report.nodeid, reason))


def pytest_runtest_logreport(report):
  _record(report)


def pytest_collectreport(report):
  _record(report)


def disallowed_skips(skips, allowed=ALLOWED_SKIPS):
  """The (nodeid, reason) pairs whose reason matches none of the ``allowed`` regexes."""
  return [(n, r) for n, r in skips if not any(re.search(a, r) for a in allowed)]


def pytest_sessionfinish(session, exitstatus):
  if os.environ.get("CI") != "true" or hasattr(session.config, "workerinput"):
    return
  bad = disallowed_skips(_SKIPS)
  if bad:
    lines = "\n".join(f"  {n}: {r}" for n, r in bad)
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(
        f"CI=true: {len(bad)} test(s) skipped that the installed extras should run "
        f"(allowed skips: {ALLOWED_SKIPS}):\n{lines}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
