"""The padded-image experiment of Appendix F.4 (Figure 6c, Figure 13), made quantitative.

The paper pads CIFAR-10 images with brick-red pixels (150, 50, 50), resizes them back, trains a
ResNet and sees the colour of the padding in the learned filters, although the padding carries no
information about the label. One experiment, two data paths (config field `source`):

- `source="digits"` (default, CPU scale): scikit-learn's 8×8 handwritten digits, each drawn grey
  (R = G = B) and upsampled into the centre of a `size`×`size` canvas whose border of `pad`
  pixels has one constant colour (`render`). The control is the same network trained on the same
  digits with a black border, i.e. the unpadded digit (the digits' own background is black), at
  the same geometry.
- `source=<registry data set>`, e.g. "cifar10" (full scale): natural RGB images read through
  `featcon.data` (TFDS `data_source`, offline), padded with `pad` px of one constant colour per
  image and resized back to `size`×`size`, the paper's operation (`render_rgb`).

In both, a training *condition* is a colour family (`sample_colours`): "red" = brick red ±
Uniform(−jitter, jitter) per channel, "red_fixed" = exactly brick red (the paper), likewise
green, blue, yellow; "black"; "mean" = the training images' mean pixel colour m (fixed); "none" =
no padding at all (digits: the glyph upsampled to the whole canvas; RGB: the original image, no
resize). The colour is drawn independently of the label at every step.

Controls. Digits: "black" (the digits' own background). RGB: "mean" is the fairest control: the
same images, padded and resized in exactly the same way (same content scale and blur, same border
geometry), with the border in the data's mean colour — a constant that adds no colour along the
padding direction c − m, so padded and control inputs differ *only* in the border colour. "none"
(the literal unpadded images, what "standard training" means in the paper) is also offered; it
changes the content's scale and sharpness as well, so padded − none mixes both effects.

Because the digits are grey, their *core* features lie on the grey axis `g = (1, 1, 1)/√3` of
colour space, and the padding colour is the only source of chroma (the plane orthogonal to g):
the chroma part of a first-layer filter is the deep analogue of docs/theory.md's background projection
`C_bg`. For the control run the chroma part of the stem filters receives no gradient at all (its
inputs have none), so it only changes by weight decay; any growth in the padded run is learned
from a feature uncorrelated with the label. Natural images are not grey; their filter measure is
defined in `measures` (projection onto the padding direction relative to the mean colour).

Measured (`measure`, `filter_stats`), for both paths, at init and after training:
- filters: digits: `filter_colour_stats` (grey-axis and chroma norms, chroma share, response to
  the padding colour's chroma direction); RGB: `filter_pad_stats` (response to, and
  share of the filters' norm along, a uniform patch of the padding direction u = (c − m)/‖c − m‖);
- representation: the fraction of the variance of `stem` and `pre_logits` (over test images ×
  random padding colours) that lies *within* images, i.e. is caused by changing only the padding
  colour (`within_group_variance_fraction`);
- accuracy on the test images under each test family: how accuracy moves when only the padding
  colour changes.

Modules: `colours` (families, sampling), `render` (digits and RGB inputs), `measures` (filter
measures, variance fraction), `data` (`PaddingData`, digits and registry images), `experiment`
(trainer, measurement, summary, figures, `run_experiment`). The config's fields and defaults:
`configs/analyze.py:padding_config`.
"""
from featcon.analysis.padding.colours import COLOUR_FAMILIES
from featcon.analysis.padding.colours import family_names
from featcon.analysis.padding.colours import family_rgb
from featcon.analysis.padding.colours import GREY
from featcon.analysis.padding.colours import MEAN
from featcon.analysis.padding.colours import parse_family
from featcon.analysis.padding.colours import sample_colours
from featcon.analysis.padding.colours import UNPADDED
from featcon.analysis.padding.data import digits_data
from featcon.analysis.padding.data import load_digits
from featcon.analysis.padding.data import load_images
from featcon.analysis.padding.data import PaddingData
from featcon.analysis.padding.data import rgb_data
from featcon.analysis.padding.data import rgb_sources
from featcon.analysis.padding.data import synthetic_glyphs
from featcon.analysis.padding.experiment import check_config
from featcon.analysis.padding.experiment import load_data
from featcon.analysis.padding.experiment import make_model
from featcon.analysis.padding.experiment import make_trainer
from featcon.analysis.padding.experiment import measure
from featcon.analysis.padding.experiment import PaddingRun
from featcon.analysis.padding.experiment import plot_experiment
from featcon.analysis.padding.experiment import run_experiment
from featcon.analysis.padding.experiment import run_seed
from featcon.analysis.padding.experiment import summarise
from featcon.analysis.padding.experiment import Trainer
from featcon.analysis.padding.measures import filter_colour_stats
from featcon.analysis.padding.measures import filter_pad_stats
from featcon.analysis.padding.measures import within_group_variance_fraction
from featcon.analysis.padding.render import border_mask
from featcon.analysis.padding.render import render
from featcon.analysis.padding.render import render_rgb
