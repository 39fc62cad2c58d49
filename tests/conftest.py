import os

os.environ.setdefault("XLA_FLAGS", "")
