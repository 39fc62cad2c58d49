"""``FEATCON_THEORY_XLA_OPT_LEVEL``: XLA's backend optimisation level of the theory programs."""
import jax
import numpy as np
import pytest

import featcon
from featcon.theory import program

TINY = {"data": {"d": 16, "k_core": 4, "k_bg": 4, "n_train": 32, "n_eval": 64},
        "model": {"width": 8}, "train": {"steps": 40, "log_every": 20}}


@pytest.mark.parametrize("value", ["fast", "4", "-1", "0.5"])
def test_bad_level_is_refused_before_compiling(monkeypatch, value):
  monkeypatch.setenv(program.OPT_LEVEL_ENV, value)
  with pytest.raises(ValueError, match=rf"FEATCON_THEORY_XLA_OPT_LEVEL='{value}'.*0, 1, 2, 3"):
    featcon.simulate(TINY, progress=False)
  with pytest.raises(ValueError, match="FEATCON_THEORY_XLA_OPT_LEVEL"):
    featcon.sweep({**TINY, "seed": [0, 1]}, progress=False)


def test_levels_give_the_same_numbers(monkeypatch):
  """Level 0 and level 3 compile different code for the same program: equal up to float32
  rounding (a level that changed the semantics would move the risks by far more than 1e-5)."""
  out = {}
  for level in ("0", "3"):
    monkeypatch.setenv(program.OPT_LEVEL_ENV, level)
    assert program.compiler_options() == {"xla_backend_optimization_level": int(level)}
    r = featcon.simulate(TINY, progress=False)
    out[level] = np.asarray([r.metrics["id_risk"], r.metrics["ood_risk"]])
  np.testing.assert_allclose(out["0"], out["3"], rtol=1e-5, atol=1e-7)
  monkeypatch.delenv(program.OPT_LEVEL_ENV)
  assert program.compiler_options() is None


def test_simulate_and_sweep_compile_with_the_level(monkeypatch):
  seen = []
  real = jax.stages.Lowered.compile

  def compile_(self, compiler_options=None, **kw):
    seen.append(compiler_options)
    return real(self, compiler_options, **kw)

  monkeypatch.setattr(jax.stages.Lowered, "compile", compile_)
  monkeypatch.setenv(program.OPT_LEVEL_ENV, "1")
  featcon.simulate(TINY, progress=False)
  featcon.sweep({**TINY, "seed": [0, 1]}, progress=False)
  # each run compiles its stage programs (start, advance, finish): every one at the level
  assert len(seen) >= 2, seen
  assert all(o == {"xla_backend_optimization_level": 1} for o in seen), seen
