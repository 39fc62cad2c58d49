"""Bad configs fail before compiling, with messages naming field, value and what is allowed."""
import pytest

import featcon

CASES = [
    ({"model": {"activation": "swish"}}, r"'model.activation' has value 'swish'; allowed: one of \('relu'"),
    ({"model": {"width": -4}}, r"'model.width' has value -4; allowed: an integer in \[1, inf\]"),
    ({"model": {"width": 2.5}}, r"'model.width' has value 2.5; allowed: an integer"),
    ({"data": {"d": 32, "k_core": 20, "k_bg": 20}}, r"'data.k_core' has value 20; allowed: k_core \+ k_bg <= d = 32"),
    ({"data": {"colour": 1}}, r"unknown config field 'data.colour'; allowed fields here: .*coeff_dist"),
    ({"optimiser": "sgd"}, r"unknown config field 'optimiser'"),
    ({"train": {"lr": -1.0}}, r"'train.lr' has value -1.0; allowed: a number > 0"),
    ({"train": {"momentum": 1.0}}, r"'train.momentum' has value 1.0; allowed: a number < 1"),
    ({"train": {"loss": "mse"}}, r"'train.loss' has value 'mse'; allowed: 'hinge' or 'logistic'"),
    ({"data": {"task": "regression"}}, r"'train.loss' has value 'hinge'; allowed: 'mse'"),
    ({"train": {"steps": 1000, "log_every": 300}}, r"'train.log_every' has value 300; allowed: a divisor of train.steps = 1000"),
    ({"data": {"shift": 1.5}}, r"'data.shift' has value 1.5; allowed: a number <= 1.0"),
    ({"data": {"regime": "online"}}, r"'train.batch_size' has value 0; allowed: an integer in \[1, inf\]"),
    ({"train": {"batch_size": 5000}}, r"'train.batch_size' has value 5000; allowed: an integer in \[0, 1000\]"),
    ({"train": {"optimizer": "adam", "path": "feature"}}, r"'train.path' has value 'feature'; allowed: 'auto' or 'input'"),
    ({"train": {"optimizer": "lion"}}, r"'train.optimizer' has value 'lion'"),
    ({"data": {"coeff_dist": "cauchy"}}, r"'data.coeff_dist' has value 'cauchy'"),
    ({"model": {"bias": "yes"}}, r"'model.bias' has value 'yes'; allowed: True or False"),
    ({"train": "fast"}, r"config field 'train' must be a section"),
]


@pytest.mark.parametrize("override,message", CASES)
def test_bad_config_message(override, message, monkeypatch):
  compiled = []
  monkeypatch.setattr("jax.jit", lambda *a, **k: compiled.append(1))
  with pytest.raises(ValueError, match=message):
    featcon.simulate(override)
  assert not compiled, "validation must happen before anything is compiled"


def test_defaults_are_the_public_script_setting():
  c = featcon.default_config()
  assert (c.data.n_train, c.data.d, c.data.k_core, c.data.k_bg) == (1000, 256, 32, 32)
  assert (c.model.width, c.model.activation, c.model.init, c.model.train_output) == (256, "relu", "pytorch", False)
  assert (c.train.loss, c.train.optimizer, c.train.momentum, c.train.lr, c.train.weight_decay,
          c.train.steps) == ("hinge", "sgd", 0.9, 1e-3, 1e-3, 20000)


def test_nested_dict_and_configdict_are_equivalent():
  c = featcon.default_config()
  c.model.width = 8
  assert featcon.resolve_config(c) == featcon.resolve_config({"model": {"width": 8}})
