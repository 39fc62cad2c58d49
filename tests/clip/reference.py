"""open_clip reference towers (``featcon/testing/clip_reference.py``, shared with the benchmarks)."""
from featcon.testing.clip_reference import (  # noqa: F401  pylint: disable=unused-import
    flax_variables, import_open_clip, randomize_, rel_err, torch_forward, torch_tower, tower_pair)
