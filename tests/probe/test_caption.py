"""The caption of the deep stage's results.md (featcon.probe.stages.caption)."""
import re

import numpy as np

from configs.distill import digits
from featcon.data import refs
from featcon.probe import metrics, stages


def _config(**eval_fields):
  c = digits.get_config("tiny-rn,smoke")
  c.seed = 3
  c.eval.update(eval_fields)
  return c


def test_caption_names_sets_seed_probes_and_the_fitted_formula():
  c = _config()
  c.data.eval_sets = "digits_grey:test:id,digits_colour:test:ood,digits_grey:val:ood"
  text = stages.caption(c, refs.eval_refs(c), (0.81234, -0.1), 2)
  assert text.startswith("ID: digits_grey:test. OOD: digits_colour:test, digits_grey:val; ")
  assert "Seeds: 1 (seed 3;" in text and "Metric: top-1 accuracy" in text
  assert "frozen `embedding` features of each encoder, trained on digits_grey:train and " \
         "selected on digits_grey:val: adamw (AdamW, 2 epochs" in text
  assert "among 1e-4,1e-3,1e-2,1e-1,1,10" in text
  assert "ER = OOD - sigmoid(a logit(ID) + b)" in text and "ln(p / (1 - p))" in text
  assert "(a, b) = (0.8123, -0.1000) from 2 baseline models: ridge probes on raw pixels " \
         "trained on nested random fractions 0.3,1.0 of digits_grey:train." in text
  # The formula as written is the one effective_robustness computes.
  a, b = (float(v) for v in re.search(r"\(a, b\) = \(([-\d.]+), ([-+\d.]+)\)", text).groups())
  i, o = 0.9, 0.4
  np.testing.assert_allclose(o - 1 / (1 + np.exp(-(a * np.log(i / (1 - i)) + b))),
                             metrics.effective_robustness(i, o, (a, b)), rtol=1e-12)


def test_caption_without_a_fit_says_why():
  c = _config(baseline="none")
  c.data.eval_limit = 100
  text = stages.caption(c, refs.eval_refs(c), None, 0)
  assert "(the first 100 images of each set)" in text
  assert "Eff. robustness: not computed (config.eval.baseline='none')." in text
  c = _config(baseline="csv:base.csv")
  assert "fewer than 2 baseline models" in stages.caption(c, refs.eval_refs(c), None, 1)
  assert "the published models of base.csv" in stages.caption(c, refs.eval_refs(c), (1, 0), 3)
