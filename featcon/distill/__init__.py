"""Representation distillation (Section 2): encoders, training machinery, stages."""
