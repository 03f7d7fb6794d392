"""Data sets by name: scikit-learn built-ins, MNIST and Fashion-MNIST from IDX files, and ``csv:PATH``.

Every loader returns a :class:`Dataset` with seeded train/validation/test splits, preprocessed with
statistics of the train split only.
"""

from . import _mnist, _sklearn  # noqa: F401  (importing them registers the built-in loaders)
from ._dataset import Dataset, list_datasets, load_dataset, register_dataset

__all__ = ["Dataset", "list_datasets", "load_dataset", "register_dataset"]
