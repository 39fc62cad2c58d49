r"""The theory workloads in PyTorch: the eager loop of the public script and the batched
implementation a speed-minded PyTorch user writes, for ``benchmarks/theory_vs_torch.py``.

Both workloads (``benchmarks/common.py``) train the public script's network
``f(x) = a^T sigma(W x + b) + c`` (hidden weights and bias trained, output weights +-1/m and bias
``c`` frozen) with the hinge loss and ``torch.optim.SGD`` semantics (coupled weight decay
``g + lambda W``, momentum buffer ``mu buf + g``, update ``W - eta buf``):

* ``fig8``: the full fixed set (n = 1000, d = m = 256, K = 64), momentum 0.9, lr 1e-3;
  seeds x {relu, identity};
* ``online``: a fresh batch of 32 each step, width 512, plain SGD, seeds x 8 learning rates.

:func:`eager_fig8` / :func:`eager_online` are the eager loop, one configuration at a time
(``nn.Linear``, autograd, ``torch.optim.SGD``). :class:`Batched` runs all configurations at once:

* one leading axis over seeds; the configurations of a seed share their data (Figure 8: the
  fixed set; online: every batch), so their weights sit side by side in one (D, C m) matrix and
  a step is one wide matmul ``X (n, D) @ W^T (D, C m)`` forward and one ``X^T (D, n) @ G``
  for the weight gradient per seed, as ``torch.bmm`` over the seeds;
* ``coords="input"`` trains ``W`` (m, d) on ``x = M z``; ``coords="feature"`` trains
  ``P = W M`` (m, K) on ``z`` (exact for SGD with coupled decay: ``dL/dW = (dL/dP) M^T``, so
  ``P`` follows closed dynamics in K = 64 dimensions, 4x fewer FLOPs when d = 256);
* ``grads="hand"`` (the gradient of the hinge loss written out:
  ``dL/df = -y 1[y f < 1] / n``, ``dL/dH = dL/df a sigma'(H)``) or ``"autograd"``;
* ``matmul="aten"`` (``torch.bmm``: MKL here) or ``"onednn"`` (oneDNN's inner-product kernel,
  ``torch.ops.mkldnn._linear_pointwise``, seed by seed);
* ``compile=True`` wraps the step in ``torch.compile`` (Inductor's C++ backend; where it fails
  to build, :func:`try_compile` reports why and the step runs eagerly).

``tests/theory/test_torch_batched.py`` checks every variant against the eager loop over a few
hundred steps at small sizes.
"""
import time

import numpy as np
import torch

WORKLOADS = ("fig8", "online")
COORDS = ("input", "feature")
GRADS = ("hand", "autograd")
MATMULS = ("aten", "onednn")


def _dictionary(g, d, k):
  q, r = torch.linalg.qr(torch.randn(d, k, generator=g))
  return q * torch.sign(torch.diagonal(r))[None, :]


def _linear_init(g, m, d):
  """``nn.Linear(d, m)``'s default init (weights and bias U(-1/sqrt(d), 1/sqrt(d))) from ``g``."""
  bound = 1.0 / np.sqrt(d)
  w = (torch.rand(m, d, generator=g) * 2 - 1) * bound
  b = (torch.rand(m, generator=g) * 2 - 1) * bound
  return w, b


def _sample(g, n, k_core, k_bg, balanced=False):
  """Def. 3.1: labels, core ``y u`` and background ``u`` with ``u ~ U[0, 1]`` (on ``g``'s
  device)."""
  dev = g.device
  if balanced:
    y = torch.where(torch.arange(n, device=dev) < n // 2, 1.0, -1.0)
  else:
    y = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, 1.0, -1.0)
  z = torch.cat([y[:, None] * torch.rand(n, k_core, generator=g, device=dev),
                 torch.rand(n, k_bg, generator=g, device=dev)], 1)
  return z, y


def problem(workload, seed, *, d=256, k_core=32, k_bg=32, n=1000, n_eval=4096, width=None):
  """One seed's problem: dictionary ``M``, data in feature coordinates (``z``) and the initial
  hidden layer (``W0``, ``b0``) and frozen output bias ``c``, all drawn from
  ``torch.Generator().manual_seed(seed)``. The online workload's batches are drawn later from
  ``gen`` (:func:`online_batch`), so every configuration of a seed sees the same batches."""
  width = width or (256 if workload == "fig8" else 512)
  g = torch.Generator().manual_seed(seed)
  M = _dictionary(g, d, k_core + k_bg)
  out = {"workload": workload, "M": M, "k_core": k_core, "k_bg": k_bg, "width": width}
  if workload == "fig8":
    out["z"], out["y"] = _sample(g, n, k_core, k_bg, balanced=True)
  ze, ye = _sample(g, n_eval, k_core, k_bg)
  out.update(ze=ze, ye=ye)
  if workload == "fig8":
    out["zo"] = torch.cat([ze[:, :k_core], torch.rand(n_eval, k_bg, generator=g) - 1], 1)
  out["W0"], out["b0"] = _linear_init(g, width, d)
  out["c"] = (torch.rand((), generator=g) * 2 - 1) / np.sqrt(width)
  out["gen"] = g
  return out


def online_batch(g, batch, k_core, k_bg, seeds=None):
  """A fresh online batch ``(z, y)`` (Def. 3.1) from ``g``; with ``seeds``, (seeds, batch, K)
  from one draw."""
  if seeds is None:
    return _sample(g, batch, k_core, k_bg)
  dev = g.device
  y = torch.where(torch.rand(seeds, batch, generator=g, device=dev) < 0.5, 1.0, -1.0)
  z = torch.cat([y[..., None] * torch.rand(seeds, batch, k_core, generator=g, device=dev),
                 torch.rand(seeds, batch, k_bg, generator=g, device=dev)], 2)
  return z, y


def output_weights(width):
  """The public script's frozen output weights: +1/m for the first half, -1/m for the rest."""
  return torch.where(torch.arange(width) < width // 2, 1.0, -1.0) / width


def _hinge(f, y):
  return torch.clamp(1 - y * f, min=0).mean()


def _eager_net(prob, activation):
  m, d = prob["W0"].shape
  hidden = torch.nn.Linear(d, m)
  out = torch.nn.Linear(m, 1)
  out.requires_grad_(False)
  with torch.no_grad():
    hidden.weight.copy_(prob["W0"])
    hidden.bias.copy_(prob["b0"])
    out.weight.copy_(output_weights(m)[None])
    out.bias.fill_(float(prob["c"]))
  act = torch.nn.ReLU() if activation == "relu" else torch.nn.Identity()
  return hidden, (lambda v: out(act(hidden(v)))[:, 0])


def eager_fig8(prob, activation, steps, *, lr=1e-3, momentum=0.9, weight_decay=1e-3,
               log_every=1000):
  """The eager loop of the public script on the fixed set (input space, autograd,
  ``torch.optim.SGD``). Returns ``(risks, W, b)``: the ID and OOD hinge risks every
  ``log_every`` steps (list of pairs) and the final hidden layer."""
  M = prob["M"]
  x, y, xe, xo, ye = prob["z"] @ M.T, prob["y"], prob["ze"] @ M.T, prob["zo"] @ M.T, prob["ye"]
  hidden, net = _eager_net(prob, activation)
  opt = torch.optim.SGD(hidden.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
  log = []
  for t in range(steps):
    opt.zero_grad()
    loss = _hinge(net(x), y)
    loss.backward()
    opt.step()
    if (t + 1) % log_every == 0:
      with torch.no_grad():
        log.append((_hinge(net(xe), ye).item(), _hinge(net(xo), ye).item()))
  return log, hidden.weight.detach().clone(), hidden.bias.detach().clone()


def eager_online(prob, lr, steps, *, batch=32, weight_decay=1e-3, log_every=1000):
  """The eager loop on fresh batches drawn from a copy of the seed's generator (so every
  learning rate of a seed sees the same batches). Returns ``(risks, W, b)`` as
  :func:`eager_fig8` (ID risk only)."""
  g = torch.Generator()
  g.set_state(prob["gen"].get_state())
  xe, ye, M = prob["ze"] @ prob["M"].T, prob["ye"], prob["M"]
  hidden, net = _eager_net(prob, "relu")
  opt = torch.optim.SGD(hidden.parameters(), lr=lr, weight_decay=weight_decay)
  log = []
  for t in range(steps):
    z, y = online_batch(g, batch, prob["k_core"], prob["k_bg"])
    opt.zero_grad()
    loss = _hinge(net(z @ M.T), y)
    loss.backward()
    opt.step()
    if (t + 1) % log_every == 0:
      with torch.no_grad():
        log.append((_hinge(net(xe), ye).item(),))
  return log, hidden.weight.detach().clone(), hidden.bias.detach().clone()


def try_compile(fn, **kw):
  """``(torch.compile(fn), None)`` if Inductor builds and runs it on a first call with ``kw``
  (the step's own arguments), else ``(fn, reason)``: the eager step and why compiling failed."""
  try:
    compiled = torch.compile(fn, dynamic=False)
    compiled(**kw)
    return compiled, None
  except Exception as e:  # pylint: disable=broad-except
    return fn, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def _onednn_bmm(a, b):
  """``a @ b`` for (S, n, k) @ (S, k, p) with oneDNN's inner product, seed by seed."""
  bt = b.transpose(1, 2).contiguous()
  return torch.stack([torch.ops.mkldnn._linear_pointwise(a[s], bt[s], None, "none", [], "")
                      for s in range(a.shape[0])])


class Batched:
  """All configurations of a workload trained at once (module docstring).

  Args:
    probs: one :func:`problem` per seed (same workload and sizes).
    configs: per seed, the configurations that share its data: Figure 8 a tuple of
      activations (``"relu"``/``"identity"``), online a tuple of learning rates.
    coords, grads, matmul, compile: see the module docstring.
    lr, momentum, weight_decay: Figure 8's optimizer (online: lr per config, no momentum).
    batch: the online batch size; ``shared_generator``: draw every seed's online batch from one
      generator in one call (the fast way) instead of from each seed's own generator (the eager
      loop's numbers, for the check).
    device: where the tensors live and the steps run (``"cuda"`` on a GPU; the problems are
      drawn on the CPU and copied; online batches come from a generator on ``device``).
  """

  def __init__(self, probs, configs, *, coords="feature", grads="hand", matmul="aten",
               compile=False, lr=1e-3, momentum=0.9, weight_decay=1e-3, batch=32,
               shared_generator=True, generator_seed=12345, device="cpu"):
    for name, v, allowed in (("coords", coords, COORDS), ("grads", grads, GRADS),
                             ("matmul", matmul, MATMULS)):
      if v not in allowed:
        raise ValueError(f"{name}={v!r}; allowed: {allowed}")
    if grads == "autograd" and matmul == "onednn":
      raise ValueError("grads='autograd' with matmul='onednn': oneDNN's inner product "
                       "(torch.ops.mkldnn._linear_pointwise) has no backward; allowed: "
                       "grads='hand' with 'onednn', or matmul='aten' with 'autograd'")
    dev = torch.device(device)
    if dev.type != "cpu":
      if matmul == "onednn":
        raise ValueError(f"matmul='onednn' on device={device!r}; allowed: 'aten' (oneDNN is "
                         "PyTorch's CPU backend)")
      if not shared_generator:
        raise ValueError(f"shared_generator=False on device={device!r}; allowed: True (the "
                         "per-seed generators of the check are CPU generators)")
      move = lambda v: v.to(dev) if isinstance(v, torch.Tensor) else v
      probs = [{k: move(v) for k, v in p.items()} for p in probs]
    self.device = dev
    self.workload = probs[0]["workload"]
    self.coords, self.grads, self.matmul = coords, grads, matmul
    self.S, self.C = len(probs), len(configs)
    self.m = probs[0]["width"]
    self.k_core, self.k_bg = probs[0]["k_core"], probs[0]["k_bg"]
    self.batch = batch
    self.momentum = 0.0 if self.workload == "online" else momentum
    self.weight_decay = weight_decay
    feature = coords == "feature"
    self.M = torch.stack([p["M"] for p in probs])                       # (S, d, K)
    to_net = (lambda z: z) if feature else (lambda z: z @ self.M.transpose(1, 2))
    self.to_net = to_net
    if self.workload == "fig8":
      self.x = to_net(torch.stack([p["z"] for p in probs]))             # (S, n, D)
      self.y = torch.stack([p["y"] for p in probs])                     # (S, n)
      self.xo = to_net(torch.stack([p["zo"] for p in probs]))
      relu = torch.tensor([a == "relu" for a in configs], device=dev)
      lrs = torch.full((self.C,), float(lr), device=dev)
    else:
      relu = torch.ones(self.C, dtype=torch.bool, device=dev)
      lrs = torch.tensor([float(v) for v in configs], dtype=torch.float32, device=dev)
      self.gens = [self._copy_gen(p["gen"]) for p in probs]
      self.shared_gen = (torch.Generator(device=dev).manual_seed(generator_seed)
                         if shared_generator else None)
    self.xe = to_net(torch.stack([p["ze"] for p in probs]))
    self.ye = torch.stack([p["ye"] for p in probs])
    # Kernel layout (S, D, C m): configuration j of a seed owns columns j m ... (j + 1) m.
    w0 = torch.stack([p["W0"] @ p["M"] if feature else p["W0"] for p in probs])  # (S, m, D)
    self.Wt = w0.transpose(1, 2).repeat(1, 1, self.C).contiguous()
    self.b = torch.stack([p["b0"] for p in probs])[:, None, :].repeat(1, 1, self.C).contiguous()
    self.c = torch.stack([p["c"] for p in probs])[:, None, None]          # (S, 1, 1)
    self.a = output_weights(self.m).to(dev).repeat(self.C).view(self.C, self.m)  # (C, m)
    self.relu = relu[:, None].expand(self.C, self.m).reshape(-1)          # (C m,)
    self.lr = lrs[:, None].expand(self.C, self.m).reshape(-1)             # (C m,)
    self.buf_W = torch.zeros_like(self.Wt) if self.momentum else None
    self.buf_b = torch.zeros_like(self.b) if self.momentum else None
    self.bmm = torch.bmm if matmul == "aten" else _onednn_bmm
    self.step_fn = self._step_hand if grads == "hand" else self._step_autograd
    self.compile_error = None
    if compile:
      x, y = self._batch_data(advance=False)
      args = dict(Wt=self.Wt.clone(), b=self.b.clone(), buf_W=self._clone(self.buf_W),
                  buf_b=self._clone(self.buf_b), x=x, y=y)
      with torch.no_grad():
        self.step_fn, self.compile_error = try_compile(self.step_fn, **args)
    self.compiled = compile and self.compile_error is None

  @staticmethod
  def _clone(t):
    return None if t is None else t.clone()

  @staticmethod
  def _copy_gen(g):
    out = torch.Generator()
    out.set_state(g.get_state())
    return out

  def _batch_data(self, advance=True):
    """The step's ``(x, y)``; online with ``advance=False``: a batch of the right shape that
    leaves the generators where they are (for compiling)."""
    if self.workload == "fig8":
      return self.x, self.y
    if not advance:
      z = torch.rand(self.S, self.batch, self.k_core + self.k_bg, device=self.device)
      return self.to_net(z), torch.where(z[..., 0] < 0.5, 1.0, -1.0)
    if self.shared_gen is not None:
      z, y = online_batch(self.shared_gen, self.batch, self.k_core, self.k_bg, seeds=self.S)
    else:
      zs, ys = zip(*[online_batch(g, self.batch, self.k_core, self.k_bg) for g in self.gens])
      z, y = torch.stack(zs), torch.stack(ys)
    return self.to_net(z), y

  def _output(self, H):
    """``f`` (S, n, C) from pre-activations H (S, n, C m)."""
    A = torch.where(self.relu & (H <= 0), 0.0, H)
    S, n = H.shape[:2]
    return (A.view(S, n, self.C, self.m) * self.a).sum(-1) + self.c

  def _sgd(self, Wt, b, buf_W, buf_b, gW, gb):
    gW = gW + self.weight_decay * Wt
    gb = gb + self.weight_decay * b
    if buf_W is not None:
      buf_W = self.momentum * buf_W + gW
      buf_b = self.momentum * buf_b + gb
      gW, gb = buf_W, buf_b
    return Wt - self.lr * gW, b - self.lr * gb, buf_W, buf_b

  def _step_hand(self, Wt, b, buf_W, buf_b, x, y):
    """One SGD step with the hinge gradient written out (module docstring)."""
    S, n = y.shape
    H = self.bmm(x, Wt) + b                                               # (S, n, C m)
    f = self._output(H)                                                   # (S, n, C)
    dfl = torch.where(y[..., None] * f < 1, -y[..., None] / n, 0.0)       # dL/df
    dH = (dfl[..., None] * self.a).view(S, n, -1)
    dH = torch.where(self.relu & (H <= 0), 0.0, dH)
    gW = self.bmm(x.transpose(1, 2), dH)                                  # (S, D, C m)
    gb = dH.sum(1, keepdim=True)
    return self._sgd(Wt, b, buf_W, buf_b, gW, gb)

  def _step_autograd(self, Wt, b, buf_W, buf_b, x, y):
    """One SGD step with autograd's gradient of the summed per-configuration mean losses."""
    with torch.enable_grad():
      Wt_, b_ = Wt.detach().requires_grad_(True), b.detach().requires_grad_(True)
      f = self._output(self.bmm(x, Wt_) + b_)
      loss = torch.clamp(1 - y[..., None] * f, min=0).mean(1).sum()
      gW, gb = torch.autograd.grad(loss, (Wt_, b_))
    return self._sgd(Wt, b, buf_W, buf_b, gW, gb)

  def risks(self):
    """ID (and Figure 8: OOD) hinge risk per configuration, (S, C) each."""
    with torch.no_grad():
      out = []
      for xs in ((self.xe, self.xo) if self.workload == "fig8" else (self.xe,)):
        f = self._output(self.bmm(xs, self.Wt) + self.b)
        out.append(torch.clamp(1 - self.ye[..., None] * f, min=0).mean(1))
      return out

  def run(self, steps, log_every=1000):
    """Trains ``steps`` steps, measuring the risks every ``log_every``; returns their list."""
    log = []
    with torch.no_grad():
      for t in range(steps):
        x, y = self._batch_data()
        self.Wt, self.b, self.buf_W, self.buf_b = self.step_fn(
            Wt=self.Wt, b=self.b, buf_W=self.buf_W, buf_b=self.buf_b, x=x, y=y)
        if (t + 1) % log_every == 0:
          log.append([r.clone() for r in self.risks()])
    if self.device.type == "cuda":
      torch.cuda.synchronize()
    return log

  def hidden(self, s, j):
    """The hidden layer ``(W, b)`` (m, D) of configuration ``j`` of seed ``s`` (network
    coordinates: ``P`` on the feature path)."""
    cols = slice(j * self.m, (j + 1) * self.m)
    return self.Wt[s, :, cols].T, self.b[s, 0, cols]

  def flops_per_step(self):
    """The training matmuls' FLOPs per step: forward and weight gradient, 2 n D (C m) each."""
    n = self.x.shape[1] if self.workload == "fig8" else self.batch
    D = self.Wt.shape[1]
    return self.S * 2 * (2 * n * D * self.C * self.m)


def torch_peak(n=2048, reps=10):
  """The best float32 ``n x n`` matmul FLOP/s of PyTorch's kernels here: ``torch.mm`` (MKL)
  and oneDNN's inner product (``torch.ops.mkldnn._linear_pointwise``); a dict per kernel."""
  a = torch.randn(n, n)
  out = {}
  for name, fn in (("aten", lambda: torch.mm(a, a)),
                   ("onednn", lambda: torch.ops.mkldnn._linear_pointwise(a, a, None, "none",
                                                                          [], ""))):
    fn()
    best = float("inf")
    for _ in range(reps):
      t = time.perf_counter()
      fn()
      best = min(best, time.perf_counter() - t)
    out[name] = 2 * n ** 3 / best
  return out
