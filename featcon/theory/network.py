"""The networks of Section 3.2 as pure functions on a params pytree: two-layer, and with
``depth`` L > 1 hidden layers (docs/theory.md, "Deeper networks").

``f(x) = sum_r a_r sigma(<w_r, x> + b_r) + c`` (scalar output, classification) or
``f(x) = A^T sigma(W x + b) + c`` (vector output, the regression of Fig. 9). With L hidden
layers, ``h_1 = sigma(W x + b)``, ``h_l = sigma(W_l h_{l-1} + b_l)`` for l = 2..L and
``f(x) = A^T h_L + c``.

Params are a dict ``{"W": (m, D), "a": (m,) or (m, out), ["b": (m,), "c": () or (out,)]}``,
plus ``"W_l": (m, m)`` (and ``"b_l": (m,)``) for each deeper layer l = 2..L.
``D`` is the input dimension ``d``, or ``K`` when the network runs in feature coordinates
(``P = W M``, docs/theory.md, "Exact feature-coordinate dynamics"). Widths can be *padded*:
a ``mask`` (m,) of ones and zeros switches neurons off so that a padded network computes
exactly the narrow one.
"""
import jax
import jax.numpy as jnp

ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh", "leaky_relu", "identity")
INITS = ("pytorch", "gaussian")
OUTPUT_INITS = ("signs", "pytorch")
OUTPUT_SIGNS = ("half", "random")
OUTPUT_BIAS_INITS = ("pytorch", "zero")
TRAIN_LAYERS = ("all", "first")
MAX_DEPTH = 8  # hidden layers at most (model.depth)


def layer_keys(l):
  """The params keys ``(weight, bias)`` of hidden layer ``l >= 2``."""
  return f"W_{l}", f"b_{l}"


def depth_of(params):
  """The number of hidden layers L of a params pytree."""
  return 1 + sum(1 for l in range(2, MAX_DEPTH + 1) if layer_keys(l)[0] in params)


def hidden_trainable(key, train_layers="all"):
  """Whether params entry ``key`` is a hidden-layer parameter that trains under
  ``model.train_layers``: the first layer's ``W``/``Wt``/``b`` always, layers 2..L with
  ``"all"`` only."""
  if key in ("W", "Wt", "b"):
    return True
  deeper = key.startswith(("W_", "b_"))
  return deeper and train_layers == "all"


def activation(name, leaky_slope=0.1):
  """The activation ``sigma`` by name (Section 3.2, Fig. 10).

  ``gelu`` is the exact erf form (PyTorch's default), ``leaky_relu`` has slope ``leaky_slope``
  (0.1 in docs/theory.md) for negative inputs.
  """
  fns = {
      "relu": jax.nn.relu,
      "gelu": lambda u: jax.nn.gelu(u, approximate=False),
      "sigmoid": jax.nn.sigmoid,
      "tanh": jnp.tanh,
      "leaky_relu": lambda u: jnp.where(u >= 0, u, leaky_slope * u),
      "identity": lambda u: u,
  }
  if name not in fns:
    raise ValueError(f"model.activation={name!r} is not one of {ACTIVATIONS}")
  return fns[name]


def switch_activation(names, leaky_slope=0.1):
  """``sigma(u, index)`` choosing among ``names`` with a traced index (for activation sweeps)."""
  fns = [activation(n, leaky_slope) for n in names]
  if len(fns) == 1:
    return lambda u, index: fns[0](u)
  return lambda u, index: jax.lax.switch(index, fns, u)


def init(key, *, m, d_in, fan_in, out_dim=None, width=None, init="pytorch", init_scale=1.0,
         bias=False, output_init="signs", output_signs="half", output_bias_init="pytorch",
         depth=1):
  """Initial parameters (Section 3.2; deeper layers: docs/theory.md, "Deeper networks").

  Args:
    key: PRNG key.
    m: number of rows (the padded width when sweeping widths).
    d_in: columns of ``W`` (d, or K in feature coordinates: pass ``fan_in=d`` then and
      project the rows afterwards).
    fan_in: the input dimension d that sets the init scale.
    out_dim: None for a scalar output, else the output dimension (regression).
    width: the actual width ``m_eff <= m`` (traced allowed); sets the 1/m output scale.
    init: ``"pytorch"`` (nn.Linear default: U(-k, k), k = init_scale / sqrt(fan_in), biases
      too) or ``"gaussian"`` (w_r ~ N(0, sigma0^2 I), sigma0 = init_scale / sqrt(fan_in),
      zero biases).
    output_init: ``"signs"``: frozen-style +-1/m_eff output weights (``output_signs``
      ``"half"``: first half +, second half - as the public script; ``"random"``: random signs
      as the paper); ``"pytorch"``: U(-1/sqrt(m_eff), 1/sqrt(m_eff)).
    output_bias_init: the output bias ``c`` when ``bias`` and ``output_init="signs"``:
      ``"pytorch"`` keeps ``nn.Linear``'s random initial value U(-1/sqrt(m_eff), 1/sqrt(m_eff))
      (the public script overwrites only the output weights with +-1/m, so its frozen ``c``
      stays at that draw); ``"zero"``: c = 0. With ``output_init="pytorch"`` (a trained
      output layer) ``c`` is always the PyTorch draw.

    depth: hidden layers L. Layers 2..L (:func:`deeper_layer`) come from keys of their own
      (``fold_in(key, l)``), so the first layer and the output layer are the same draws at
      every depth.

  Row ``r`` of every per-neuron array does not depend on ``m`` (prefix-consistent draws), so a
  padded init restricted to its first ``m_eff`` rows (and columns, for ``W_l``) equals the
  narrow init.
  """
  width = m if width is None else width
  kw, kb, ka, kc = jax.random.split(key, 4)
  scale = init_scale / jnp.sqrt(jnp.float32(fan_in))
  if init == "pytorch":
    w = jax.random.uniform(kw, (m, d_in), jnp.float32, -1.0, 1.0) * scale
    b = jax.random.uniform(kb, (m,), jnp.float32, -1.0, 1.0) * scale
  elif init == "gaussian":
    w = jax.random.normal(kw, (m, d_in), jnp.float32) * scale
    b = jnp.zeros((m,), jnp.float32)
  else:
    raise ValueError(f"model.init={init!r} is not one of {INITS}")
  ashape = (m,) if out_dim is None else (m, out_dim)
  widthf = jnp.asarray(width, jnp.float32)
  if output_init == "signs":
    if output_signs == "half":
      sign = jnp.where(jnp.arange(m) < width // 2, 1.0, -1.0)
      sign = sign if out_dim is None else jnp.broadcast_to(sign[:, None], ashape)
    elif output_signs == "random":
      sign = jnp.where(jax.random.bernoulli(ka, 0.5, ashape), 1.0, -1.0)
    else:
      raise ValueError(f"model.output_signs={output_signs!r} is not one of {OUTPUT_SIGNS}")
    a = sign.astype(jnp.float32) / widthf
  elif output_init == "pytorch":
    a = jax.random.uniform(ka, ashape, jnp.float32, -1.0, 1.0) / jnp.sqrt(widthf)
  else:
    raise ValueError(f"model.output_init={output_init!r} is not one of {OUTPUT_INITS}")
  params = {"W": w, "a": a}
  if bias:
    params["b"] = b
    cshape = () if out_dim is None else (out_dim,)
    if output_bias_init not in OUTPUT_BIAS_INITS:
      raise ValueError(f"model.output_bias_init={output_bias_init!r} is not one of "
                       f"{OUTPUT_BIAS_INITS}")
    if output_init == "pytorch" or output_bias_init == "pytorch":
      params["c"] = jax.random.uniform(kc, cshape, jnp.float32, -1.0, 1.0) / jnp.sqrt(widthf)
    else:
      params["c"] = jnp.zeros(cshape, jnp.float32)
  for l in range(2, depth + 1):
    wl, bl = deeper_layer(jax.random.fold_in(key, l), m=m, width=width, init=init,
                          init_scale=init_scale)
    kw_l, kb_l = layer_keys(l)
    params[kw_l] = wl
    if bias:
      params[kb_l] = bl
  return params


def deeper_layer(key, *, m, width, init="pytorch", init_scale=1.0):
  """Weights ``W_l`` (m, m) and bias ``b_l`` (m,) of a hidden layer l >= 2 with fan-in the
  actual width ``width`` (traced allowed): ``"pytorch"`` U(-k, k), k = init_scale / sqrt(width),
  biases too (``nn.Linear(m, m)``'s default); ``"gaussian"`` N(0, k^2), zero biases.

  Row r is drawn from ``fold_in(key_W, r)`` as a vector of m entries, so entry (r, j) does not
  depend on the padded ``m``: padded and narrow inits agree on the narrow block.
  """
  kw, kb = jax.random.split(key)
  scale = init_scale / jnp.sqrt(jnp.asarray(width, jnp.float32))
  rows = jax.vmap(lambda r: jax.random.fold_in(kw, r))(jnp.arange(m))
  if init == "pytorch":
    w = jax.vmap(lambda k: jax.random.uniform(k, (m,), jnp.float32, -1.0, 1.0))(rows) * scale
    b = jax.random.uniform(kb, (m,), jnp.float32, -1.0, 1.0) * scale
  elif init == "gaussian":
    w = jax.vmap(lambda k: jax.random.normal(k, (m,), jnp.float32))(rows) * scale
    b = jnp.zeros((m,), jnp.float32)
  else:
    raise ValueError(f"model.init={init!r} is not one of {INITS}")
  return w, b


def to_kernel(params):
  """Stores ``W`` (m, D) transposed as ``"Wt"`` (D, m), the layout of a Flax ``Dense`` kernel.

  The training loop keeps its weights in this layout: XLA:CPU computes the weight gradient
  ``x^T G`` into a (D, m) array about 1.5x faster than ``G^T x`` into (m, D) for the small
  per-configuration matrices of a sweep (``benchmarks/theory_vs_torch.py``, docs/performance.md).
  Every function here accepts either layout.
  """
  out = {k: v for k, v in params.items() if k != "W"}
  out["Wt"] = params["W"].T
  return out


def from_kernel(params):
  """The inverse of :func:`to_kernel` (a no-op on params that hold ``W``)."""
  if "Wt" not in params:
    return params
  out = {k: v for k, v in params.items() if k != "Wt"}
  out["W"] = params["Wt"].T
  return out


def preactivation(params, x):
  """``<w_r, x> + b_r`` for a batch ``x`` (n, D): shape (n, m)."""
  h = x @ params["Wt"] if "Wt" in params else x @ params["W"].T
  if "b" in params:
    h = h + params["b"]
  return h


def apply(params, x, sigma, mask=None):
  """The network output ``f(x)`` (Section 3.2) for a batch ``x`` (n, D).

  Args:
    params: the params pytree.
    x: inputs (n, D).
    sigma: the activation, a function of the pre-activation.
    mask: optional (m,) neuron mask for padded widths.

  Returns:
    (n,) for a scalar output, (n, out) for a vector output.
  """
  return readout(params, preactivation(params, x), sigma, mask)


def readout(params, pre, sigma, mask=None):
  """``sum_r a_r sigma(pre_r) + c`` from the first layer's pre-activations ``pre`` (n, m)
  (see :func:`apply`); with deeper layers, ``a`` reads out the last hidden layer's ``h_L``."""
  h = hidden_states(params, pre, sigma, mask)[-1]
  out = h @ params["a"]
  if "c" in params:
    out = out + params["c"]
  return out


def hidden_states(params, pre, sigma, mask=None):
  """``[h_1, ..., h_L]`` (each (n, m)) from the first layer's pre-activations ``pre``:
  ``h_1 = sigma(pre)``, ``h_l = sigma(h_{l-1} W_l^T + b_l)``; masked neurons are 0 in every
  layer (so a padded network computes the narrow one)."""
  h = sigma(pre)
  if mask is not None:
    h = h * mask
  hs = [h]
  for l in range(2, depth_of(params) + 1):
    kw, kb = layer_keys(l)
    u = h @ params[kw].T
    if kb in params:
      u = u + params[kb]
    h = sigma(u)
    if mask is not None:
      h = h * mask
    hs.append(h)
  return hs
