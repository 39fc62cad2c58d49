"""The schema is the one declaration of the theory config: defaults, validation, the
Static/Dynamic split and docs/config.md all derive from it."""
import dataclasses
import os

import numpy as np
import pytest

import featcon
from featcon.theory import config as config_lib
from featcon.theory import program
from featcon.theory import schema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
  return out


def test_default_configs_are_the_schema_defaults():
  assert _flat(featcon.default_config().to_dict()) == {f.name: f.default for f in schema.FIELDS}
  sweep = _flat(config_lib.sweep_config().to_dict())
  assert sweep == {f.name: f.default for f in schema.FIELDS + schema.SWEEP_FIELDS}
  assert config_lib.theory_config().model.bias is False
  assert schema.RESULT_INVARIANT == ("sweep.memory_budget_gb", "sweep.max_chunk",
                                     "sweep.max_configs", "sweep.share_batches",
                                     "sweep.progress")


def test_docs_config_md_is_generated_from_the_schema():
  with open(os.path.join(ROOT, "docs", "config.md")) as f:
    text = f.read()
  assert schema.render(text) == text, "run python -m featcon.theory.configdoc"
  for f in schema.FIELDS + schema.SWEEP_FIELDS:
    assert f"| `{f.name}` |" in text


_WRONG = {schema.Choice: "no-such-choice", schema.Int: "x", schema.Real: "x", schema.Bool: "x",
          schema.Radii: "x", schema.BatchSize: "x", schema.Text: 3, schema.FieldGroups: "x"}


@pytest.mark.parametrize("field", [f.name for f in schema.FIELDS])
def test_every_field_is_validated_with_its_name(field):
  f = schema.BY_NAME[field]
  section, _, leaf = field.rpartition(".")
  over = {section: {leaf: _WRONG[type(f.check)]}} if section else {leaf: _WRONG[type(f.check)]}
  with pytest.raises(ValueError, match=f"config field '{field}' has value"):
    config_lib.resolve(over)


def test_static_and_dynamic_are_the_schema_targets():
  """Every Static / Dynamic attribute is set by exactly one schema field, or chosen per group
  (program.GROUP_FIELDS / GROUP_DYNAMIC); each field lands where it says."""
  static_targets = [f.static if isinstance(f.static, str) else f.static[0]
                    for f in schema.FIELDS if f.static]
  dynamic_targets = [f.dynamic for f in schema.FIELDS if f.dynamic]
  assert sorted(static_targets + list(program.GROUP_FIELDS)) == sorted(
      f.name for f in dataclasses.fields(program.Static))
  assert sorted(dynamic_targets + list(program.GROUP_DYNAMIC)) == sorted(program.Dynamic._fields)
  for f in schema.FIELDS:
    assert f.sweep in schema.SWEEP_KIND_DOC
    assert (f.sweep == "vmap") == (f.dynamic is not None and f.static is None), f.name
  base = config_lib.resolve({"train": {"steps": 10, "log_every": 5}})
  s0, d0 = program.from_config(base)
  changes = {"seed": 7, "train.lr": 0.5, "train.weight_decay": 0.25, "train.momentum": 0.5,
             "train.b1": 0.5, "train.b2": 0.75, "train.eps": 0.125, "model.init_scale": 2.0,
             "data.shift": 0.5}
  for name, value in changes.items():
    f = schema.BY_NAME[name]
    section, _, leaf = name.rpartition(".")
    over = {"train": {"steps": 10, "log_every": 5}}
    if section:
      over[section] = {**over.get(section, {}), leaf: value}
    else:
      over[leaf] = value
    s, d = program.from_config(config_lib.resolve(over))
    assert s == s0, name  # a vmapped field never changes the compiled program
    assert np.asarray(getattr(d, f.dynamic)) == np.asarray(value, getattr(d0, f.dynamic).dtype)
  s, _ = program.from_config(config_lib.resolve({"data": {"d": 64}, "model": {"width": 8}}))
  assert (s.d, s.width) == (64, 8)
