"""Deep-network analyses of Section 5 and Appendices F.2–F.4, G (featcon.analysis).

Command lines:
  python -m experiments.analyze --config=configs/analyze.py --workdir=runs/analyze
      every encoder analysis on the padded-digits benchmark, then the padded-image experiment
      (3 conditions × 3 seeds); ≈5–10 min on 2 CPU cores. Needs `pip install -e ".[analysis]"`.
  python -m experiments.analyze --config=configs/analyze.py:smoke --workdir=/tmp/a
      featcon.clip's tiny-rn / tiny-vit (random init) on synthetic glyphs, one short padding run; seconds.
  python -m experiments.analyze --config=configs/analyze.py:padding --workdir=runs/padding
      only the padded-image experiment (F.4), with 5 seeds.
  python -m experiments.analyze --config=configs/analyze.py:digits --workdir=runs/analyze_digits \
      --config.encoders="teacher=tiny-rn@runs/digits_rn/teacher,student=tiny-rn@runs/digits_rn/student,random=random:tiny-rn"
      teacher vs distilled student vs random init of an `experiments.distill` run
      (configs/distill/digits.py) on the offline digits benchmark's test split (ID grey
      backgrounds vs OOD colour photos); about a minute.

Encoders are "label=spec" pairs, spec "random:<arch>" or "<arch>@<checkpoint>" (msgpack file,
orbax directory, or a distillation run's "<workdir>/teacher" / "<workdir>/student"; see
featcon/analysis/encoders.py), e.g. --config.encoders="teacher=RN50@t.msgpack,student=RN50@s.msgpack,random=random:RN50".
Expected result on the offline benchmark: see docs/analyses.md.
"""
import ml_collections

from featcon.analysis import padding


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.run = "encoders,padding"   # which parts to run
  # After the padding experiment, its trained models of the first seed are analysed as encoders
  # ("padded", "control") beside c.encoders; set False to analyse c.encoders only.
  c.analyse_padding_models = True
  c.encoders = "random=random:small-resnet"
  c.analyses = "rates,selectivity,density,domain,gradcam"
  c.layers = ""                # comma list; "" = block outputs after the nonlinearity
  c.representation = "pre_logits"   # intermediate for the domain probe ("embedding" = output)
  c.selectivity_mode = "morcos"
  c.density_layer = ""         # "" = the first analysed layer (the paper: first residual block)
  c.density_threshold = 1e-3
  c.holdout = 0.3
  c.probe_l2 = 1e-3
  c.cam_layer = ""             # "" = the last block
  c.cam_head = "probe"         # ridge probe on the embedding; "identity" for classifiers
  c.cam_examples = 6
  c.batch_size = 128

  c.data = ml_collections.ConfigDict()
  c.data.source = "padded_digits"  # or "digits:<split>", "padded_glyphs", "npz:<path>"
  c.data.seed = 0
  c.data.n_per_domain = 300
  c.data.n_shift = 6
  c.data.size = 16
  c.data.pad = 3
  c.data.jitter = 0.15
  c.data.id_family = "red"
  c.data.ood_family = "green"

  c.padding = padding.default_config()

  if arg == "smoke":
    c.encoders = "rn=random:tiny-rn,vit=random:tiny-vit"
    c.data.source = "padded_glyphs"
    c.data.size = 32
    c.data.pad = 4
    c.data.n_per_domain = 40
    c.representation = "embedding"
    c.cam_examples = 3
    c.batch_size = 32
    c.padding.steps = 10
    c.padding.widths = (4, 8)
    c.padding.test_families = ("red", "green", "black")
    c.padding.seeds = (0,)
    c.padding.n_test = 60
    c.padding.probe_digits = 10
    c.padding.probe_colours = 3
    c.padding.train_conditions = ("black", "red")
  elif arg == "digits":
    c.run = "encoders"
    c.encoders = "random=random:tiny-rn"
    c.data.source = "digits:test"
    c.data.size = 32               # configs/distill/digits.py: data.image_size
    c.data.n_per_domain = 300      # the same 300 test digits in each domain
    c.representation = "embedding"
    c.density_layer = "layer1"     # the paper's G.2: the first residual block
  elif arg == "padding":
    c.run = "padding"
    c.padding.seeds = (0, 1, 2, 3, 4)
  elif arg:
    raise ValueError(f"config arg={arg!r}: allowed None, 'smoke', 'padding', 'digits'")
  c.lock()
  return c
