"""Linear probes on frozen features and the OOD evaluation (effective robustness, Figure 1)."""
from featcon.probe.linear import LinearProbe, predict, ridge_probe, train_linear_probe
from featcon.probe.metrics import (accuracy, effective_robustness, fit_baseline, logit,
                                   scatter_plot)
