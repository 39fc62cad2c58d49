"""The theory config's schema, declared once: every field with its default, allowed values,
meaning, paper symbol and how a sweep treats it.

Everything else derives from :data:`FIELDS` and :data:`SWEEP_FIELDS`:
:func:`featcon.theory.config.default_config` and ``sweep_config`` (:func:`build`), validation
(:func:`check`), the split of a resolved config into the compiled program's ``Static`` and
``Dynamic`` parts (:func:`featcon.theory.program.from_config` reads each field's ``static`` and
``dynamic`` targets) and the tables of ``docs/config.md`` (:func:`markdown`;
``python -m featcon.theory.configdoc`` rewrites them). Adding a field is one :class:`Field` here
plus its use in the code (for an input of the compiled program, also its attribute in ``Static``
or ``Dynamic``; ``tests/theory/test_schema.py`` checks those against the targets declared here).

A field's ``sweep`` kind says what varying it in a sweep costs (docs/sweeps.md, "What
compiles"): ``vmap`` (a value of the compiled program, ``Dynamic``), ``pad`` (padded to the
group's largest; both ``Static`` and ``Dynamic``), ``switch`` (``lax.switch`` between
activations in one program), ``compile`` (one compile per distinct value, ``Static``) or
``none`` (consumed before the program is built).
"""
import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

import ml_collections

from featcon.errors import ConfigError
from featcon.theory import features, losses, network, optim

TASKS = ("classification", "regression")
REGIMES = ("fixed", "online")
PATHS = ("auto", "feature", "input")


def _fail(field, value, allowed):
  raise ConfigError(f"config field {field!r} has value {value!r}; allowed: {allowed}")


class Choice(NamedTuple):
  """One of ``options``."""
  options: Tuple[Any, ...]

  def __call__(self, field, v, c):
    if v not in self.options:
      _fail(field, v, f"one of {tuple(self.options)}")

  def doc(self):
    return ", ".join(f"`{o}`" for o in self.options)


def _bound(b, c):
  """A bound: a number, or the dotted name of another field of the config ``c``."""
  return get(c, b) if isinstance(b, str) else b


class Int(NamedTuple):
  """An integer in ``[lo, hi]`` (a bound may name another field)."""
  lo: Union[int, str, None] = None
  hi: Union[int, str, None] = None

  def __call__(self, field, v, c):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
      _fail(field, v, "an integer")
    lo, hi = _bound(self.lo, c), _bound(self.hi, c)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
      _fail(field, v, f"an integer in [{lo}, {'inf' if hi is None else hi}]")

  def doc(self):
    name = lambda b: b.split(".")[-1] if isinstance(b, str) else b
    if self.hi is None:
      return f"integer ≥ {self.lo}"
    if self.hi == 2**32 - 1:
      return f"integer in [{self.lo}, 2^32)"
    return f"integer in [{name(self.lo)}, {name(self.hi)}]"


class Real(NamedTuple):
  """A finite real number, with optional (open) bounds."""
  lo: Optional[float] = None
  hi: Optional[float] = None
  lo_open: bool = False
  hi_open: bool = False

  def __call__(self, field, v, c):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
      _fail(field, v, "a finite real number")
    if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
      _fail(field, v, f"a number {'>' if self.lo_open else '>='} {self.lo}")
    if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
      _fail(field, v, f"a number {'<' if self.hi_open else '<='} {self.hi}")

  def doc(self):
    if self.lo is not None and self.hi is not None:
      return f"number in [{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
    if self.lo is not None:
      return f"number {'>' if self.lo_open else '≥'} {self.lo:g}"
    return "number"


class Bool(NamedTuple):
  """True or False."""

  def __call__(self, field, v, c):
    if not isinstance(v, bool):
      _fail(field, v, "True or False")

  def doc(self):
    return "bool"


class Radii(NamedTuple):
  """Two positive radii."""

  def __call__(self, field, v, c):
    if (not isinstance(v, (tuple, list)) or len(v) != 2
        or not all(isinstance(r, numbers.Real) and r > 0 for r in v)):
      _fail(field, v, "two positive radii (r_+1, r_-1)")

  def doc(self):
    return "two positive numbers"


class BatchSize(NamedTuple):
  """``fixed``: 0 (full batch) to n_train; ``online``: at least 1."""

  def __call__(self, field, v, c):
    if get(c, "data.regime") == "online":
      Int(1)(field, v, c)
    else:
      Int(0, "data.n_train")(field, v, c)

  def doc(self):
    return "fixed: [0, n]; online: ≥ 1"


class Text(NamedTuple):
  """A string (parsed later, e.g. ``sweep.axes``)."""

  def __call__(self, field, v, c):
    if not isinstance(v, str):
      _fail(field, v, "a string")

  def doc(self):
    return "string"


class FieldGroups(NamedTuple):
  """A tuple of tuples of dotted field names (``sweep.zip``)."""

  def __call__(self, field, v, c):
    if not isinstance(v, (tuple, list)) or not all(
        isinstance(g, (tuple, list)) and g and all(isinstance(f, str) for f in g) for g in v):
      _fail(field, v, "a tuple of tuples of dotted field names, e.g. "
            "(('train.lr', 'train.weight_decay'),)")

  def doc(self):
    return "tuple of tuples of field names"


Check = Callable[[str, Any, Any], None]
# A Static target: the Static attribute's name, or (name, conversion of the config value).
Target = Union[None, str, Tuple[str, Callable[[Any], Any]]]


class Field(NamedTuple):
  """One config field.

  Attributes:
    name: the dotted name (``section.field``; ``seed`` is top-level).
    default: the default value (its type is the field's type).
    check: validates a value (:class:`Choice`, :class:`Int`, ...); bounds may name fields.
    doc: the meaning (Markdown), as docs/config.md shows it.
    sweep: ``vmap``, ``pad``, ``switch``, ``compile`` or ``none`` (module docstring).
    static: the ``Static`` attribute it sets (or ``(name, conversion)``); None: none.
    dynamic: the ``Dynamic`` attribute it sets; None: none.
    symbol: the paper's symbol.
    allowed: the docs' text for the allowed values (default: derived from ``check``).
    default_doc: the docs' text for the default (default: the value).
    result_invariant: changes how a sweep runs, not its results (a workdir may be resumed
      with another value).
  """
  name: str
  default: Any
  check: Check
  doc: str
  sweep: str = "compile"
  static: Target = None
  dynamic: Optional[str] = None
  symbol: str = ""
  allowed: str = ""
  default_doc: str = ""
  result_invariant: bool = False


def _floats(v):
  return tuple(float(r) for r in v)


F = Field
# pylint: disable=line-too-long
FIELDS = (
    F("seed", 0, Int(0, 2**32 - 1), "PRNG seed: dictionary, data, init and batches all derive from it", "vmap", dynamic="seed"),
    F("data.task", "classification", Choice(TASKS), "binary classification, or regression to the core coefficients (Fig. 9)", static="task", symbol="y / (z_j)_{j∈S_core}"),
    F("data.d", 256, Int(1), "input dimension", static="d", symbol="d"),
    F("data.k_core", 32, Int(1), "number of core features", static="k_core", symbol="\\|S_core\\|", allowed="integer ≥ 1, k_core + k_bg ≤ d"),
    F("data.k_bg", 32, Int(0), "number of background features", static="k_bg", symbol="\\|S_bg\\|"),
    F("data.core", "linear", Choice(features.CORE_KINDS), "core block: `linear` (z_j = y·u_j, Def. 3.1) or `sphere` (radius r_+ for y = +1, r_- for y = −1; Fig. 3(d)/10)", static="core"),
    F("data.core_radii", (1.0, 2.0), Radii(), "(r_+, r_-) of the sphere core", static=("core_radii", _floats), symbol="r1, r2"),
    F("data.coeff_dist", "uniform", Choice(features.COEFF_DISTS), "distribution D of u_j, v_j on [0, 1]", static="coeff_dist", symbol="D", allowed="`uniform` (U[0,1]), `beta` (Beta(2,2)), `bernoulli` ({0,1})"),
    F("data.shift", 1.0, Real(0.0, 1.0), "OOD shift strength s: OOD background = v − s, v ~ D (s = 1: the paper's D' on [−1, 0]); a sweep over it shares one training (only the OOD sets move)", "vmap", dynamic="shift", symbol="s, D'"),
    F("data.bg_label_corr", 0.0, Real(-1.0, 1.0), "spurious correlation ρ: the first `k_spurious` background coefficients are `v_j − s + (1 − 2s) ρ y` (docs/theory.md, \"Spurious background coordinates\"): class means `E[v] ± ρ` in distribution, the label term gone at s = 1/2 and reversed at s = 1; 0 is the paper's label-free background", "vmap", dynamic="bg_label_corr", symbol="ρ", allowed="number in [-1, 1]; ≠ 0 needs k_spurious ≥ 1"),
    F("data.k_spurious", 0, Int(0, "data.k_bg"), "number of background coordinates (the first of S_bg) whose mean moves with the label by `bg_label_corr`", static="k_spurious", symbol="\\|S_sp\\|"),
    F("data.regime", "fixed", Choice(REGIMES), "`fixed`: n examples drawn once (half per class), the public script; `online`: fresh batch each step, the theorems", static="regime"),
    F("data.n_train", 1000, Int(2), "size of the fixed training set", static="n_train", symbol="n"),
    F("data.n_eval", 4096, Int(2), "size of the fresh ID and OOD evaluation samples", static="n_eval"),
    F("model.width", 256, Int(1), "number of neurons of every hidden layer", "pad", static="width", dynamic="width", symbol="m"),
    F("model.depth", 1, Int(1, network.MAX_DEPTH), "number of hidden layers L (1: the paper's two-layer network); every hidden layer has `width` neurons, the activation and (with `bias`) a trained bias; layers 2..L are initialised like the first with fan-in `width` (docs/theory.md, \"Deeper networks\")", static="depth", symbol="L"),
    F("model.train_layers", "all", Choice(network.TRAIN_LAYERS), "which hidden layers train: `all`, or `first` (layers 2..L frozen at their initial values); the output layer follows `train_output`", static="train_layers"),
    F("model.activation", "relu", Choice(network.ACTIVATIONS), "hidden activation", "switch", static=("activations", lambda v: (v,)), symbol="σ", allowed="`relu`, `gelu` (exact erf), `sigmoid`, `tanh`, `leaky_relu`, `identity`"),
    F("model.leaky_slope", 0.1, Real(0.0, 1.0), "negative slope of `leaky_relu`", static=("leaky_slope", float)),
    F("model.init", "pytorch", Choice(network.INITS), "hidden-layer init: `pytorch` (U(−k, k), k = init_scale/√d, biases too) or `gaussian` (N(0, σ0²), σ0 = init_scale/√d, zero biases)", static="init", symbol="σ0"),
    F("model.init_scale", 1.0, Real(0.0, lo_open=True), "multiplier of the init scale", "vmap", dynamic="init_scale", symbol="σ0·√d"),
    F("model.bias", True, Bool(), "hidden bias b_r (trained) and output bias c (trained with the output layer, else frozen at its initial value); `True` is the public script's `nn.Linear` default, `False` the theorems' network", static="bias", symbol="b_r, c"),
    F("model.train_output", False, Bool(), "train the output layer (else frozen)", static="train_output", symbol="a_r"),
    F("model.output_init", "signs", Choice(network.OUTPUT_INITS), "`signs`: ±1/m (frozen theory setting); `pytorch`: U(−1/√m, 1/√m)", static="output_init", symbol="a_r"),
    F("model.output_signs", "half", Choice(network.OUTPUT_SIGNS), "with `signs`: `half` (first half +, public script) or `random` (paper)", static="output_signs"),
    F("model.output_bias_init", "pytorch", Choice(network.OUTPUT_BIAS_INITS), "initial (and, when frozen, permanent) output bias c with `output_init=\"signs\"`: `pytorch` keeps `nn.Linear`'s draw U(−1/√m, 1/√m) (the public script overwrites only the output weights), `zero` sets c = 0; with `output_init=\"pytorch\"` c is always the PyTorch draw", static="output_bias_init", symbol="c"),
    F("train.loss", "hinge", Choice(losses.LOSSES), "per-example loss", static="loss", symbol="ℓ", allowed="`hinge`, `logistic` (classification); `mse` (regression)"),
    F("train.optimizer", "sgd", Choice(optim.OPTIMIZERS), "`sgd` (coupled decay, eq. 4, heavy-ball momentum), `adam` (coupled L2), `adamw` (decoupled) — all optax", static="optimizer"),
    F("train.lr", 1e-3, Real(0.0, lo_open=True), "learning rate", "vmap", dynamic="lr", symbol="η"),
    F("train.lr_schedule", "constant", Choice(optim.SCHEDULES), "`constant`, `cosine` (to 0), `warmup_cosine`", static="lr_schedule"),
    F("train.warmup_steps", 0, Int(0, "train.steps"), "warmup of `warmup_cosine`", static="warmup_steps"),
    F("train.momentum", 0.9, Real(0.0, 1.0, hi_open=True), "heavy-ball momentum of `sgd` (0 = plain SGD)", "vmap", dynamic="momentum", symbol="μ"),
    F("train.weight_decay", 1e-3, Real(0.0), "weight decay", "vmap", dynamic="weight_decay", symbol="λ"),
    F("train.b1", 0.9, Real(0.0, 1.0, hi_open=True), "Adam first-moment decay", "vmap", dynamic="b1"),
    F("train.b2", 0.999, Real(0.0, 1.0, hi_open=True), "Adam second-moment decay", "vmap", dynamic="b2"),
    F("train.eps", 1e-8, Real(0.0), "Adam epsilon", "vmap", dynamic="eps"),
    F("train.batch_size", 0, BatchSize(), "`fixed`: 0 or n = full batch, else minibatches drawn with replacement; `online`: the batch size", "pad", static="batch", dynamic="batch_size", symbol="B"),
    # The step counter and the logged step axis are int32 on device.
    F("train.steps", 20000, Int(1, 2**31 - 1), "training steps", static="steps", symbol="T", allowed="integer in [1, 2^31)"),
    F("train.log_every", 0, Int(1, "train.steps"), "measurement interval (inside the scan)", static="log_every", default_doc="0: automatic, the divisor of `steps` closest to 20 intervals (1000 for 20,000 steps, 5 for 100)", allowed="0 or a divisor of `steps`"),
    F("train.layer_metrics", False, Bool(), "measure every hidden layer's sensitivity to core and background coordinates and its movement under the OOD shift (docs/theory.md, \"Per-layer measurements\") at each log step", static="layer_metrics"),
    F("train.oracle_projection", False, Bool(), "project each update of W onto the core subspace (claim C7)", static="oracle_projection"),
    F("train.path", "auto", Choice(PATHS), "`feature`: exact K-dimensional simulation of P = W M (SGD only); `input`: d-dimensional; `auto`: `feature` when exact", static="path"),
    F("train.linear_shortcut", True, Bool(), "for a linear network (identity activation, frozen output, SGD, no oracle) simulate the exact rank-one dynamics `W_t = alpha_t W_0 + A Q_t` (with biases: `[W_t \\| b_t] = alpha_t [W_0 \\| b_0] + A Q_t` on inputs `[x \\| 1]`; O(nD) per step instead of O(nDm)); `False` runs the general loop"),
)

SWEEP_FIELDS = (
    F("sweep.axes", "", Text(), "the axes, `;`-separated, each `<field>=<v1>,<v2>,...` (docs/sweeps.md); they combine as a product", "none", default_doc="`\"\"` (one configuration)", allowed="`;`-separated axes of the fields above"),
    F("sweep.zip", (), FieldGroups(), "groups of axes that advance together (equal lengths; one axis)", "none", default_doc="()", allowed="tuple of tuples of swept field names"),
    F("sweep.memory_budget_gb", 4.0, Real(0.0, lo_open=True), "device memory one compiled call may use (GiB); larger groups run in equal chunks, a configuration over the budget is refused before compiling", "none", result_invariant=True),
    F("sweep.max_chunk", 4096, Int(1), "configurations per compiled call at most", "none", result_invariant=True),
    F("sweep.max_configs", 20_000, Int(1), "configurations a sweep may expand to at most; a larger product of axes is refused before it is expanded, naming its size", "none", result_invariant=True),
    F("sweep.share_batches", True, Bool(), "online configurations that draw the same batches (equal seed and `data.bg_label_corr`) draw each batch once and compute their hidden layers as one wide matmul (docs/performance.md); the same draws, results equal to float rounding", "none", result_invariant=True),
    F("sweep.progress", True, Bool(), "progress bars and compile messages", "none", result_invariant=True),
)
# pylint: enable=line-too-long
del F

BY_NAME = {f.name: f for f in FIELDS + SWEEP_FIELDS}
# Sweep options that change how a sweep runs, not its results.
RESULT_INVARIANT = tuple(f.name for f in SWEEP_FIELDS if f.result_invariant)


def get(c, name):
  """The value of the dotted field ``name`` of a ConfigDict or nested dict."""
  for part in name.split("."):
    c = c[part]
  return c


def build(fields=FIELDS):
  """A ``ConfigDict`` of ``fields`` at their defaults (sections in declaration order)."""
  c = ml_collections.ConfigDict()
  for f in fields:
    *sections, leaf = f.name.split(".")
    node = c
    for s in sections:
      if s not in node:
        node[s] = ml_collections.ConfigDict()
      node = node[s]
    node[leaf] = f.default
  return c


def _cross(c):
  """The constraints between fields (after every field passed its own check)."""
  d, kc, kb = get(c, "data.d"), get(c, "data.k_core"), get(c, "data.k_bg")
  if kc + kb > d:
    _fail("data.k_core", kc, f"k_core + k_bg <= d = {d} (k_bg = {kb}); an orthonormal "
          "dictionary has at most d features")
  task, loss = get(c, "data.task"), get(c, "train.loss")
  if task == "regression" and loss != "mse":
    _fail("train.loss", loss, "'mse' when data.task='regression'")
  if task == "classification" and loss == "mse":
    _fail("train.loss", loss, "'hinge' or 'logistic' when data.task='classification'")
  rho, k_sp = get(c, "data.bg_label_corr"), get(c, "data.k_spurious")
  if rho != 0 and k_sp == 0:
    _fail("data.bg_label_corr", rho, "0 when data.k_spurious = 0 (set data.k_spurious to the "
          "number of background coordinates that carry the correlation)")
  steps, log_every = get(c, "train.steps"), get(c, "train.log_every")
  if steps % log_every:
    _fail("train.log_every", log_every, f"a divisor of train.steps = {steps}")
  opt = get(c, "train.optimizer")
  if get(c, "train.path") == "feature" and not optim.rotation_equivariant(opt):
    _fail("train.path", "feature", f"'auto' or 'input' for train.optimizer={opt!r} "
          "(coordinate-wise optimizers must run in input space)")


def check(c, fields=FIELDS):
  """Validates every field of ``fields`` in ``c`` (each field's check in declaration order,
  then the constraints between fields); raises ValueError naming field, value and allowed."""
  for f in sorted(fields, key=_refers):  # stable: declaration order within each pass
    f.check(f.name, get(c, f.name), c)
  if fields is FIELDS:
    _cross(c)
  return c


def _value_doc(v):
  if isinstance(v, str):
    return f"`{v}`"
  return repr(v) if isinstance(v, float) else str(v)


def _refers(f):
  """Whether a field's check reads other fields (checked after every plain field)."""
  return isinstance(f.check, BatchSize) or (
      isinstance(f.check, Int) and (isinstance(f.check.lo, str) or isinstance(f.check.hi, str)))


SWEEP_KIND_DOC = {"vmap": "vmapped", "pad": "padded", "switch": "switched", "compile": "compiles",
                  "none": ""}


def markdown(fields=FIELDS):
  """The Markdown table of ``fields``: meaning, default, allowed values and, for the theory
  fields, the paper symbol and what varying the field in a sweep costs."""
  theory = fields is FIELDS
  cols = ["field", "meaning", "default", "allowed"] + (["paper symbol", "in a sweep"] if theory else [])
  rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  for f in fields:
    cells = [f"`{f.name}`", f.doc, f.default_doc or _value_doc(f.default),
             f.allowed or f.check.doc()]
    if theory:
      cells += [f.symbol, SWEEP_KIND_DOC[f.sweep]]
    rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows)


BEGIN, END = "<!-- schema:{} begin -->", "<!-- schema:{} end -->"
TABLES = {"fields": FIELDS, "sweep": SWEEP_FIELDS}


def render(text):
  """``text`` (docs/config.md) with each generated table between its markers rewritten
  (``python -m featcon.theory.configdoc`` writes the file)."""
  for name, fields in TABLES.items():
    begin, end = BEGIN.format(name), END.format(name)
    head, sep, rest = text.partition(begin)
    _, sep2, tail = rest.partition(end)
    if not (sep and sep2):
      raise ValueError(f"markers {begin!r} ... {end!r} not found")
    text = f"{head}{begin}\n{markdown(fields)}\n{end}{tail}"
  return text
