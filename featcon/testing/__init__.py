"""References that tests and benchmarks share (PyTorch implementations that featcon is checked
against). Imported only by tests and benchmarks; they need the ``clip-test`` extra (torch)."""
