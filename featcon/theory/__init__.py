"""The theory simulator: the structured feature model (Definition 3.1), two-layer networks
trained by SGD-type optimizers in one ``lax.scan``, the measurements behind the theorems, and
vectorised sweeps (``docs/theory.md`` states the model and the symbols the code uses).

Data flows schema → config → program (Static/Dynamic) → train (features, network, losses,
optim) → metrics → simulation (one configuration) / sweeps (many: plan → runner) → results
(table, summary) → plots.
"""
