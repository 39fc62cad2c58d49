"""An independent eager PyTorch implementation of the public script's training loop.

Used by the parity test and the benchmarks: ``nn.Linear`` hidden layer (no bias), a frozen
+-1/m output layer, hinge or logistic loss on the full fixed set, ``torch.optim.SGD`` with
momentum and coupled weight decay. Written from docs/theory.md, sharing no code with featcon.
"""
import numpy as np
import torch
from torch import nn


class TwoLayer(nn.Module):

  def __init__(self, d, m, activation="relu", a=None):
    super().__init__()
    self.hidden = nn.Linear(d, m, bias=False)
    self.out = nn.Linear(m, 1, bias=False)
    self.out.weight.requires_grad_(False)
    if a is None:
      a = np.where(np.arange(m) < m // 2, 1.0, -1.0) / m
    with torch.no_grad():
      self.out.weight.copy_(torch.as_tensor(np.asarray(a), dtype=torch.float32)[None, :])
    self.act = {"relu": nn.ReLU(), "identity": nn.Identity(), "gelu": nn.GELU(),
                "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[activation]

  def forward(self, x):
    return self.out(self.act(self.hidden(x)))[:, 0]


def hinge(f, y):
  return torch.clamp(1 - y * f, min=0).mean()


def logistic(f, y):
  return nn.functional.softplus(-y * f).mean()


def train(x, y, w0, *, steps, lr=1e-3, momentum=0.9, weight_decay=1e-3, activation="relu",
          loss="hinge", a=None, log_every=None, x_eval=None, y_eval=None):
  """Trains full batch; returns final W (numpy) and the per-step training losses."""
  x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
  y = torch.as_tensor(np.asarray(y), dtype=torch.float32)
  net = TwoLayer(x.shape[1], w0.shape[0], activation, a)
  with torch.no_grad():
    net.hidden.weight.copy_(torch.as_tensor(np.asarray(w0), dtype=torch.float32))
  opt = torch.optim.SGD([net.hidden.weight], lr=lr, momentum=momentum,
                        weight_decay=weight_decay)
  loss_fn = {"hinge": hinge, "logistic": logistic}[loss]
  losses, evals = [], []
  for t in range(steps):
    opt.zero_grad()
    loss_v = loss_fn(net(x), y)
    loss_v.backward()
    opt.step()
    losses.append(loss_v.item())
    if log_every and (t + 1) % log_every == 0 and x_eval is not None:
      with torch.no_grad():
        evals.append(loss_fn(net(x_eval), y_eval).item())
  return net.hidden.weight.detach().numpy().copy(), np.asarray(losses), evals
