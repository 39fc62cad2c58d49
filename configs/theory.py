r"""Theory sweeps: the paper's numerical experiments (Section 4, Appendix F.1).

Run (the README's main job):

  python -m experiments.sweep --config=configs/theory.py --workdir=runs/theory

Variants: ``--config=configs/theory.py:<variant>`` (the table :data:`VARIANTS`); single fields
with ``--config.train.steps=2000``, the axes with ``--config.sweep.axes='seed=0,1;...'`` or
``--axis=seed=0,1``. Expected runtimes are on a 2-core laptop CPU (measured idle,
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
* ``depth``: beyond two layers (docs/beyond.md): hidden layers L in {1, 2, 3, 4} of width 64,
  ReLU vs identity, 4 seeds, 2,000 steps, with the per-layer measurements; one compile per
  depth.
* ``spurious``: spurious correlation vs contamination (docs/beyond.md): 16 of the 32 background
  coordinates carry the label with rho in {0, 0.25, 0.5, 0.75, 1} (reversed by the OOD shift),
  ReLU vs identity, 4 seeds, width 128, 2,000 steps; rho is vmapped (two compiles).
* ``smoke``: a tiny sweep for tests.

Wall time of each on an idle 2-core CPU (20 s for ``smoke`` to 2 min for ``activations``):
docs/performance.md, "Sweep variants" (``benchmarks/sweep_variants.py``); ``depth`` and
``spurious``: 4 min 45 s and 2 min on the 2-core machine shared with other jobs (docs/beyond.md).
"""
from featcon.theory import axes as axes_lib
from featcon.theory import config as config_lib

# What every variant starts from: Figure 8's split (ReLU vs identity, 4 seeds) at lr 1e-2 for
# 4,000 steps.
COMMON = {"set": {"train.lr": 1e-2, "train.steps": 4000, "train.log_every": 200},
          "axes": {"seed": [0, 1, 2, 3], "model.activation": ["relu", "identity"]}}

# variant: theorems (the idealised network, config_lib.theorems), the fields it sets, and the
# axes it sets (None: that field of COMMON's axes is not swept).
VARIANTS = {
    "default": {},
    "theory": {"theorems": True},
    "paper": {"set": {"train.lr": 1e-3, "train.steps": 20000, "train.log_every": 1000},
              "axes": {"model.bias": [True, False]}},
    "online": {"theorems": True,
               "set": {"data.regime": "online", "model.activation": "relu",
                       "train.momentum": 0.0, "train.lr": 0.05, "train.log_every": 400},
               "axes": {"seed": [0, 1], "model.activation": None, "model.width": [64, 256, 1024],
                        "train.batch_size": [8, 32, 128]}},
    "activations": {"set": {"data.core": "sphere", "model.bias": True, "model.train_output": True,
                            "model.output_init": "pytorch", "train.optimizer": "adamw",
                            "train.loss": "logistic", "train.lr": 1e-3, "train.weight_decay": 1e-2,
                            "train.steps": 3000, "train.log_every": 300},
                    "axes": {"seed": [0, 1, 2],
                             "model.activation": ["relu", "gelu", "sigmoid", "tanh"]}},
    "regression": {"theorems": True,
                   "set": {"data.task": "regression", "train.loss": "mse",
                           "model.train_output": True, "model.output_init": "pytorch"}},
    "shift": {"theorems": True, "set": {"train.steps": 2000},
              "axes": {"seed": [0, 1], "data.shift": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]}},
    "remedy": {"theorems": True, "set": {"model.activation": "relu"},
               "axes": {"model.activation": None, "train.oracle_projection": [False, True]}},
    "depth": {"set": {"model.width": 64, "train.steps": 2000, "train.log_every": 100,
                      "train.layer_metrics": True},
              "axes": {"model.depth": [1, 2, 3, 4]}},
    "spurious": {"set": {"data.k_spurious": 16, "model.width": 128, "train.steps": 2000,
                         "train.log_every": 100, "train.layer_metrics": True},
                 "axes": {"data.bg_label_corr": [0.0, 0.25, 0.5, 0.75, 1.0]}},
    "smoke": {"set": {"data.d": 32, "data.k_core": 4, "data.k_bg": 4, "data.n_train": 64,
                      "data.n_eval": 256, "train.steps": 60, "train.log_every": 20,
                      "sweep.progress": False},
              "axes": {"seed": [0, 1], "model.width": [8, 16]}},
}


def get_config(arg=None):
  """The sweep config of variant ``arg`` (a key of :data:`VARIANTS`; None means default)."""
  arg = arg or "default"
  if arg not in VARIANTS:
    raise ValueError(f"configs/theory.py variant {arg!r} is not one of {tuple(VARIANTS)}")
  variant = VARIANTS[arg]
  c = config_lib.sweep_config()
  if variant.get("theorems"):
    config_lib.theorems(c)
  c.update_from_flattened_dict({**COMMON["set"], **variant.get("set", {})})
  axes = {**COMMON["axes"], **variant.get("axes", {})}
  c.sweep.axes = axes_lib.format_axes({f: v for f, v in axes.items() if v is not None})
  return c
