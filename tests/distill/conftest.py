"""Distillation tests: the persistent JAX compilation cache (they rerun the same tiny steps)."""
import logging

from featcon import training as train_lib

train_lib.enable_compilation_cache()
train_lib.quiet_orbax_logs()
logging.getLogger("featcon").setLevel(logging.WARNING)
