"""wattless: make neural networks smaller, faster and greener, and prove it with honest measurements.

Example:
    >>> import wattless
    >>> model = wattless.train("mlp", "digits", epochs=5)                          # doctest: +SKIP
    >>> wattless.save(model, "mlp.wlz")                                             # doctest: +SKIP
    >>> result = wattless.compress("mlp.wlz", "digits", "mlp.int8.onnx", int8=True)  # doctest: +SKIP
    >>> result.record["accuracy"], result.baseline["accuracy"]                       # doctest: +SKIP
    >>> record = wattless.measure("mlp.int8.onnx", "digits")                        # doctest: +SKIP
"""

from ._version import __version__
from .api import (
    CompressResult,
    apply_steps,
    compress,
    demo,
    export,
    import_weights,
    inspect,
    load,
    measure,
    report,
    save,
    search,
    sweep,
    train,
    wrap,
)
from .data import Dataset, list_datasets, load_dataset
from .errors import WattlessError
from .io import WattlessModel
from .measurement.engines import list_engines
from .models import list_models
from .recipe import Recipe, shipped_recipes
from .techniques import list_techniques
from .train import TrainConfig

list_recipes = shipped_recipes

__all__ = [
    "CompressResult", "Dataset", "Recipe", "TrainConfig", "WattlessError", "WattlessModel", "__version__",
    "apply_steps", "compress", "demo", "export", "import_weights", "inspect", "list_datasets", "list_engines",
    "list_models", "list_recipes", "list_techniques", "load", "load_dataset", "measure", "report", "save",
    "search", "sweep", "train", "wrap",
]
