"""tests/mutation/run.py stays applicable: every mutation's snippet occurs exactly once in its
file and its pytest selection names tests that exist (a renamed test or a reworded line would
otherwise turn a mutation into an error instead of a check)."""
import json
import os
import subprocess
import sys

import pytest

from tests.mutation import run as mutation_run

ROOT = mutation_run.ROOT


def test_every_snippet_occurs_exactly_once():
  for name, path, old, new, _ in mutation_run.MUTATIONS:
    with open(os.path.join(ROOT, path)) as f:
      src = f.read()
    assert src.count(old) == 1, (name, path, src.count(old))
    assert old != new, name


def test_deep_stage_mutations_are_run():
  """tests/mutation/deep.py's list is part of the runner's, names unique across both."""
  from tests.mutation import deep  # pylint: disable=import-outside-toplevel
  assert len(deep.MUTATIONS) >= 15
  assert mutation_run.MUTATIONS[-len(deep.MUTATIONS):] == deep.MUTATIONS
  names = [m[0] for m in mutation_run.MUTATIONS]
  assert len(set(names)) == len(names)


# The deep stage's selections must name quick-tier tests (not marked slow).
_COLLECT = """
import json, sys
import pytest
from tests.mutation import deep, run
quick = {m[0] for m in deep.MUTATIONS}
codes = {}
for name, _, _, _, tests in run.MUTATIONS:
  marks = ["-m", "not slow"] if name in quick else []
  codes[name] = int(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"] + marks
                                + tests))
print("CODES=" + json.dumps(codes))
"""


@pytest.mark.slow
def test_every_selection_collects_a_test():
  """One process collects every mutation's selection (pytest exit 0: at least one test)."""
  r = subprocess.run([sys.executable, "-c", _COLLECT], cwd=ROOT, capture_output=True, text=True,
                     timeout=600)
  codes = [l for l in r.stdout.splitlines() if l.startswith("CODES=")]
  assert codes, r.stdout[-2000:] + r.stderr[-2000:]
  bad = {k: v for k, v in json.loads(codes[0][6:]).items() if v != 0}
  assert not bad, bad
