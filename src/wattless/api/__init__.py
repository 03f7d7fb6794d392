"""The public functions behind both the Python API and the CLI: every ``wattless`` command is a thin caller of one
of them, with the same behaviour and the same error messages.

Models: :func:`train`, :func:`load`, :func:`save`, :func:`import_weights`, :func:`apply_steps`; measuring:
:func:`measure`, :func:`inspect`; compressing: :func:`compress` (-> :class:`CompressResult`), :func:`export`;
studies: :func:`search`, :func:`sweep`, :func:`runs_rows`, :func:`runs_show`, :func:`runs_export`, :func:`report`,
:func:`demo`.
"""

from ..io import WattlessModel, deployable_module, load, save
from ..pipeline import Step
from ..trainer import base_meta, check_trainable_size
from ..wrap import wrap
from ._common import as_json, check_output, dataset_for, parse_batches, parse_engines, parse_model_args
from ._compress import CompressResult, compress, export
from ._measure import inspect, measure, timing_options
from ._models import (
    TrainResult,
    apply_steps,
    copy_model,
    import_file,
    import_weights,
    model_spec,
    open_model,
    resolve_steps,
    train,
    train_config,
    train_file,
)
from ._runs import demo, report, runs_export, runs_rows, runs_show, search, sweep

__all__ = [
    "CompressResult", "Step", "WattlessModel", "apply_steps", "as_json", "base_meta", "check_output",
    "check_trainable_size", "compress", "copy_model", "dataset_for", "demo", "deployable_module", "export",
    "import_weights", "inspect", "load", "measure", "model_spec", "open_model", "parse_batches", "parse_engines",
    "parse_model_args", "report", "resolve_steps", "runs_export", "runs_rows", "runs_show", "save", "search",
    "sweep", "timing_options", "train", "TrainResult", "train_config", "train_file",
    "import_file", "wrap",
]
