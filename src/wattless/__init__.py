"""wattless: make neural networks smaller, faster and greener, and prove it with honest measurements.

Example:
    >>> import wattless
    >>> model = wattless.train("mlp", "digits", epochs=5)                      # doctest: +SKIP
    >>> wattless.save(model, "mlp.wlz")                                         # doctest: +SKIP
    >>> wattless.compress("mlp.wlz", "digits", "mlp.int8.onnx", int8=True)      # doctest: +SKIP
    >>> record = wattless.measure("mlp.int8.onnx", "digits")                    # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import compress, export, measure, train  # noqa: E402
from .data import Dataset, list_datasets, load_dataset  # noqa: E402
from .errors import WattlessError  # noqa: E402
from .io import WattlessModel, load, save  # noqa: E402
from .models import list_models  # noqa: E402
from .recipe import Recipe  # noqa: E402
from .techniques import list_techniques  # noqa: E402
from .train import TrainConfig  # noqa: E402

__all__ = [
    "Dataset", "Recipe", "TrainConfig", "WattlessError", "WattlessModel", "__version__", "compress", "export",
    "list_datasets", "list_models", "list_techniques", "load", "load_dataset", "measure", "save", "train",
]
