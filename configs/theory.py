r"""Theory sweeps: the paper's numerical experiments (Section 4, Appendix F.1).

Run (the README's main job):

  python -m experiments.sweep --config=configs/theory.py --workdir=runs/theory

Variants: ``--config=configs/theory.py:<variant>``; single fields with
``--config.train.steps=2000``. Expected runtimes are on a 2-core laptop CPU (measured idle,
2026-11-28, compile included; 2-4x longer when the cores are shared).

Every variant runs the public script's network (``featcon.default_config()``: hidden bias
trained, output weights +-1/m and output bias frozen at its random initial value) unless it
says otherwise; ``theory`` is the theorems' idealised network (Section 3.2: no biases, the one
override ``model.bias = False``). The script's reported OOD loss is ``train_ood_risk`` (the
training cores with the background redrawn); ``ood_risk`` is on fresh samples.

* default: the classification split of
  Figure 8 with the public script's network: ReLU vs identity, 4 seeds, the script's fixed set
  (n = 1000, d = 256, K_core = K_bg = 32, width 256, hinge, momentum SGD, biases, frozen
  +-1/m output) at lr 1e-2 for 4,000 steps (the 20,000 steps at lr 1e-3 of ``:paper`` show
  the same, 5x slower). Expected: ReLU ends with ID hinge < 0.01 and OOD hinge > 0.5, C_bg
  rising from 0.20 to about 0.37 and a positive signed background mean; identity ends with
  ID ~ OOD and a signed background mean of 0.
* ``theory``: the same without biases (the theorems' idealised setting).
* ``paper``: both settings (``model.bias`` True and False) at the public
  script's full scale (lr 1e-3, 20,000 steps), 4 seeds each.
``online``, ``regression``, ``shift`` and ``remedy`` run the idealised network (no biases).

* ``online``: the theorems' regime: online SGD, hinge, frozen output, widths
  {64, 256, 1024} x batch sizes {8, 32, 128} x 2 seeds, one compile.
* ``activations``: Figure 3(d)/10: relu, gelu, sigmoid, tanh; sphere core, AdamW,
  both layers and biases trained; background correlation grows for every nonlinearity.
* ``regression``: Figure 9: MSE to the core coefficients, ReLU vs identity.
* ``shift``: OOD risk against the shift strength s in {0, 0.2, ..., 1}: one
  training per seed and activation measures every s (training never sees the OOD sets); two
  compiles, ReLU and the linear shortcut of the identity.
* ``remedy``: claim C7: ReLU with and without the oracle core-subspace projection.
* ``smoke``: a tiny sweep for tests.

Wall time of each on an idle 2-core CPU (20 s for ``smoke`` to 2 min for ``activations``):
docs/performance.md, "Sweep variants" (``benchmarks/sweep_variants.py``).
"""
import ml_collections

from featcon.theory.config import default_config

VARIANTS = ("default", "theory", "paper", "online", "activations", "regression", "shift", "remedy",
            "smoke")


def _base():
  c = default_config()
  c.sweep = ml_collections.ConfigDict()
  c.sweep.zip = ()
  c.sweep.memory_budget_gb = 4.0
  c.sweep.max_chunk = 4096
  c.sweep.progress = True
  return c


def get_config(arg=None):
  """The sweep config for ``arg`` (one of VARIANTS; None means default)."""
  arg = arg or "default"
  if arg not in VARIANTS:
    raise ValueError(f"configs/theory.py variant {arg!r} is not one of {VARIANTS}")
  c = _base()
  with c.ignore_type():
    c.seed = [0, 1, 2, 3]
    c.model.activation = ["relu", "identity"]
    c.train.lr = 1e-2
    c.train.steps = 4000
    c.train.log_every = 200
    if arg == "theory":
      c.model.bias = False
    elif arg == "paper":
      c.model.bias = [True, False]
      c.train.lr = 1e-3
      c.train.steps = 20000
      c.train.log_every = 1000
    elif arg == "online":
      c.model.bias = False  # the theorems' idealised network
      c.data.regime = "online"
      c.model.activation = "relu"
      c.model.width = [64, 256, 1024]
      c.train.batch_size = [8, 32, 128]
      c.train.momentum = 0.0
      c.train.lr = 0.05
      c.seed = [0, 1]
      c.train.steps = 4000
      c.train.log_every = 400
    elif arg == "activations":
      c.data.core = "sphere"
      c.model.activation = ["relu", "gelu", "sigmoid", "tanh"]
      c.model.bias = True
      c.model.train_output = True
      c.model.output_init = "pytorch"
      c.train.optimizer = "adamw"
      c.train.loss = "logistic"
      c.train.lr = 1e-3
      c.train.weight_decay = 1e-2
      c.train.steps = 3000
      c.train.log_every = 300
      c.seed = [0, 1, 2]
    elif arg == "regression":
      c.model.bias = False  # the theorems' idealised network
      c.data.task = "regression"
      c.train.loss = "mse"
      c.model.train_output = True
      c.model.output_init = "pytorch"
    elif arg == "shift":
      c.model.bias = False  # the theorems' idealised network
      c.model.activation = ["relu", "identity"]
      c.data.shift = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
      c.seed = [0, 1]
      c.train.steps = 2000
    elif arg == "remedy":
      c.model.bias = False  # the theorems' idealised network
      c.model.activation = "relu"
      c.train.oracle_projection = [False, True]
    elif arg == "smoke":
      c.data.d = 32
      c.data.k_core = 4
      c.data.k_bg = 4
      c.data.n_train = 64
      c.data.n_eval = 256
      c.model.width = [8, 16]
      c.seed = [0, 1]
      c.train.steps = 60
      c.train.log_every = 20
      c.sweep.progress = False
  return c
