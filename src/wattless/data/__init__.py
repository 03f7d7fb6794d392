"""Data sets by name: scikit-learn built-ins, MNIST and Fashion-MNIST (IDX), CIFAR-10/100 (python pickles, read
with a restricted unpickler), BasicMotions and any UEA ``.ts`` pair (``ts:PATH``), UniMiB SHAR (``.mat``), and
``csv:PATH``, ``npz:PATH`` arrays and ``folder:PATH`` images (one sub-folder per class); and, in Python, numpy
arrays (:meth:`Dataset.from_arrays`) and torch data sets (:meth:`Dataset.from_torch`).

Every loader returns a :class:`Dataset` with seeded train/validation/test splits, preprocessed with
statistics of the train split only.
"""

from . import _cifar, _csv, _folder, _mnist, _npz, _sklearn, _timeseries, _unimib  # noqa: F401  (registers loaders)
from ._dataset import Dataset, as_dataset, list_datasets, load_dataset, register_dataset

__all__ = ["Dataset", "as_dataset", "list_datasets", "load_dataset", "register_dataset"]
