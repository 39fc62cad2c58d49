"""Data layer: sources (TFDS, image folders, arrays), the paper's registry, preprocessing, loader."""
from featcon.data.loader import Loader
from featcon.data.registry import REGISTRY, Dataset, DatasetSpec, get_spec, load
from featcon.data.sources import (ArraySource, DatasetNotPreparedError, DataSource,
                                  ImageFolderSource, TfdsSource)
