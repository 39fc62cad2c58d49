"""An independent eager PyTorch implementation of the public script's training loops.

Used by the parity tests and the benchmarks. Written from docs/theory.md, sharing no code with
featcon:

* the Figure-8 setting (:func:`train`): ``nn.Linear`` layers, by default with the script's
  biases (hidden bias trained; output weights overwritten with +-1/m and frozen, output bias
  frozen at its value), hinge or logistic loss on the full fixed set, ``torch.optim.SGD`` with
  momentum and coupled weight decay; ``bias=False`` is the theorems' idealised network;
* the Figure-3(d)/10 setting (``train_output=True, optimizer="adamw"``): both layers and their
  biases trained by ``torch.optim.AdamW`` (its decay applies to every parameter, biases too);
* deeper networks (:class:`Deep`, :func:`deep_train`): ``depth`` hidden ``nn.Linear`` layers,
  the same SGD loop;
* :func:`script_problem` draws a whole run (dictionary, fixed set and its OOD copy, PyTorch's
  own ``nn.Linear`` init) from ``torch.manual_seed``, and :func:`script_run` trains and
  measures it: the script end to end, for comparisons in distribution.
"""
import numpy as np
import torch
from torch import nn

ACTS = {"relu": nn.ReLU, "identity": nn.Identity, "gelu": nn.GELU, "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh}


class TwoLayer(nn.Module):
  """``f(x) = a^T sigma(W x + b) + c``; the output layer frozen unless ``train_output``."""

  def __init__(self, d, m, activation="relu", a=None, bias=False, train_output=False):
    super().__init__()
    self.hidden = nn.Linear(d, m, bias=bias)
    self.out = nn.Linear(m, 1, bias=bias)
    if not train_output:
      if a is None:
        a = np.where(np.arange(m) < m // 2, 1.0, -1.0) / m
      with torch.no_grad():
        self.out.weight.copy_(torch.as_tensor(np.asarray(a), dtype=torch.float32)[None, :])
      for p in self.out.parameters():
        p.requires_grad_(False)
    self.act = ACTS[activation]()

  def forward(self, x):
    return self.out(self.act(self.hidden(x)))[:, 0]


class Deep(nn.Module):
  """``f(x) = a^T h_L + c`` with ``h_1 = sigma(W x + b)``, ``h_l = sigma(W_l h_{l-1} + b_l)``:
  ``depth`` hidden ``nn.Linear`` layers of width ``m`` (docs/theory.md, "Deeper networks").
  The output layer is frozen at ``a`` unless ``train_output``; with ``train_layers="first"``
  the hidden layers 2..L are frozen too. ``hidden`` is the first layer (as in :class:`TwoLayer`,
  so :func:`train` takes it as ``net``)."""

  def __init__(self, d, m, depth, activation="relu", a=None, bias=False, train_output=False,
               train_layers="all"):
    super().__init__()
    self.hidden = nn.Linear(d, m, bias=bias)
    self.deeper = nn.ModuleList([nn.Linear(m, m, bias=bias) for _ in range(depth - 1)])
    self.out = nn.Linear(m, 1, bias=bias)
    if a is not None:
      with torch.no_grad():
        self.out.weight.copy_(torch.as_tensor(np.asarray(a), dtype=torch.float32)[None, :])
    frozen = ([] if train_output else [self.out]) + (
        list(self.deeper) if train_layers == "first" else [])
    for layer in frozen:
      for p in layer.parameters():
        p.requires_grad_(False)
    self.act = ACTS[activation]()

  def forward(self, x):
    h = self.act(self.hidden(x))
    for layer in self.deeper:
      h = self.act(layer(h))
    return self.out(h)[:, 0]


def deep_train(x, y, params0, *, depth, steps, lr=1e-3, momentum=0.9, weight_decay=1e-3,
               activation="relu", loss="hinge", train_output=False, train_layers="all"):
  """Trains a :class:`Deep` network full batch with ``torch.optim.SGD`` (momentum, coupled
  decay) from the initial values ``params0`` (``W``, ``a``, optional ``b``, ``c`` and
  ``W_l``, ``b_l`` for l = 2..L, numpy). Returns ``(params, losses)`` in the same keys."""
  bias = "b" in params0
  net = Deep(np.shape(x)[1], np.shape(params0["W"])[0], depth, activation, params0["a"],
             bias=bias, train_output=train_output, train_layers=train_layers)
  _set(net.hidden.weight, params0["W"])
  if bias:
    _set(net.hidden.bias, params0["b"])
    _set(net.out.bias, params0["c"])
  for l, layer in enumerate(net.deeper, start=2):
    _set(layer.weight, params0[f"W_{l}"])
    if bias:
      _set(layer.bias, params0[f"b_{l}"])
  _, losses, _ = train(x, y, None, steps=steps, lr=lr, momentum=momentum,
                       weight_decay=weight_decay, loss=loss, net=net)
  out = {"W": net.hidden.weight.detach().numpy().copy(),
         "a": net.out.weight.detach().numpy().copy()[0]}
  if bias:
    out["b"] = net.hidden.bias.detach().numpy().copy()
    out["c"] = net.out.bias.detach().numpy().copy().reshape(())
  for l, layer in enumerate(net.deeper, start=2):
    out[f"W_{l}"] = layer.weight.detach().numpy().copy()
    if bias:
      out[f"b_{l}"] = layer.bias.detach().numpy().copy()
  return out, losses


def hinge(f, y):
  return torch.clamp(1 - y * f, min=0).mean()


def logistic(f, y):
  return nn.functional.softplus(-y * f).mean()


LOSSES = {"hinge": hinge, "logistic": logistic}


def _t(v, dtype=torch.float32):
  return torch.as_tensor(np.asarray(v), dtype=dtype)


def _set(param, value):
  if value is not None:
    with torch.no_grad():
      param.copy_(_t(value, param.dtype).reshape(param.shape))


def train(x, y, w0, *, steps, lr=1e-3, momentum=0.9, weight_decay=1e-3, activation="relu",
          loss="hinge", a=None, b0=None, c0=None, train_output=False, optimizer="sgd",
          log_every=None, x_eval=None, y_eval=None, net=None, dtype=torch.float32):
  """Trains full batch from the given initial values (``b0``/``c0`` given: the script's biases).

  ``dtype=torch.float64`` runs the whole loop in double precision (a new network only).

  Returns ``(params, losses, evals)``: the final ``{"W", ["b", "a", "c"]}`` (numpy), the
  per-step training losses and, every ``log_every`` steps, the loss on ``(x_eval, y_eval)``.
  For backward compatibility ``params`` unpacks like ``W`` when there are no biases.
  """
  x, y = _t(x, dtype), _t(y, dtype)
  bias = b0 is not None or (net is not None and net.hidden.bias is not None)
  if net is None:
    net = TwoLayer(x.shape[1], np.shape(w0)[0], activation, a, bias=bias,
                   train_output=train_output).to(dtype)
    _set(net.hidden.weight, w0)
    if bias:
      _set(net.hidden.bias, b0)
      _set(net.out.bias, c0)
    if train_output:
      _set(net.out.weight, a)
  params = [p for p in net.parameters() if p.requires_grad]
  if optimizer == "sgd":
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
  elif optimizer == "adamw":
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
  else:
    raise ValueError(f"optimizer={optimizer!r} is not one of ('sgd', 'adamw')")
  loss_fn = LOSSES[loss]
  losses, evals = [], []
  for t in range(steps):
    opt.zero_grad()
    loss_v = loss_fn(net(x), y)
    loss_v.backward()
    opt.step()
    losses.append(loss_v.item())
    if log_every and (t + 1) % log_every == 0 and x_eval is not None:
      with torch.no_grad():
        evals.append(loss_fn(net(_t(x_eval, dtype)), _t(y_eval, dtype)).item())
  out = {"W": net.hidden.weight.detach().numpy().copy()}
  if bias:
    out["b"] = net.hidden.bias.detach().numpy().copy()
    out["c"] = net.out.bias.detach().numpy().copy().reshape(())
  out["a"] = net.out.weight.detach().numpy().copy()[0]
  if not bias and not train_output:
    return out["W"], np.asarray(losses), evals
  return out, np.asarray(losses), evals


def script_problem(seed, *, d=256, k_core=32, k_bg=32, n=1000, width=256, core="linear",
                   radii=(1.0, 2.0), activation="relu", bias=True, train_output=False):
  """One run of the public script drawn with PyTorch's generator (docs/theory.md).

  Dictionary: Q factor of a d x K Gaussian; the fixed set: half of each class, core
  ``y * U[0, 1]`` (``core="linear"``) or a normalised Gaussian scaled to radius r_+ / r_-
  (``"sphere"``), background U[0, 1]; its OOD copy: the same cores, background U[-1, 0];
  the network: ``nn.Linear``'s default init (and, frozen, output weights +-1/m).
  """
  torch.manual_seed(seed)
  k = k_core + k_bg
  q, r = torch.linalg.qr(torch.randn(d, k))
  M = q * torch.sign(torch.diagonal(r))[None, :]
  y = torch.where(torch.arange(n) < n // 2, 1.0, -1.0)
  if core == "linear":
    zc = y[:, None] * torch.rand(n, k_core)
  else:
    g = torch.randn(n, k_core)
    g = g / g.norm(dim=1, keepdim=True)
    zc = g * torch.where(y > 0, radii[0], radii[1])[:, None]
  z = torch.cat([zc, torch.rand(n, k_bg)], 1)
  z_ood = torch.cat([zc, torch.rand(n, k_bg) - 1.0], 1)
  net = TwoLayer(d, width, activation, bias=bias, train_output=train_output)
  return {"M": M, "x": z @ M.T, "x_ood": z_ood @ M.T, "y": y, "net": net}


def measure(net, prob, k_core, loss="hinge"):
  """Measurements of docs/theory.md on the script's sets: losses, C_core, C_bg, signed mean."""
  with torch.no_grad():
    P = net.hidden.weight @ prob["M"]
    loss_fn = LOSSES[loss]
    return {"train_risk": loss_fn(net(prob["x"]), prob["y"]).item(),
            "train_ood_risk": loss_fn(net(prob["x_ood"]), prob["y"]).item(),
            "train_ood_error": (prob["y"] * net(prob["x_ood"]) <= 0).float().mean().item(),
            "core_corr": P[:, :k_core].norm(dim=1).mean().item(),
            "bg_corr": P[:, k_core:].norm(dim=1).mean().item(),
            "bg_signed": P[:, k_core:].mean().item()}


def script_run(seed, *, steps, lr=1e-3, momentum=0.9, weight_decay=1e-3, loss="hinge",
               optimizer="sgd", threads=None, **problem_kw):
  """Draws (:func:`script_problem`), trains and measures one run of the public script."""
  if threads:
    torch.set_num_threads(threads)
  prob = script_problem(seed, **problem_kw)
  k_core = problem_kw.get("k_core", 32)
  start = measure(prob["net"], prob, k_core, loss)
  train(prob["x"], prob["y"], None, steps=steps, lr=lr, momentum=momentum,
        weight_decay=weight_decay, loss=loss, optimizer=optimizer, net=prob["net"])
  end = measure(prob["net"], prob, k_core, loss)
  return {**{f"{k}_0": v for k, v in start.items()}, **end}

