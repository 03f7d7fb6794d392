"""Model zoo: registered architectures and the user's own ``package.module:factory``."""

from . import _zoo, cnn, mobilenet, resnet, transformer  # noqa: F401  (registers the built-in models)
from ._registry import build_model, check_input_shape, is_import_path, list_models, register_model, spec_for

__all__ = ["build_model", "check_input_shape", "is_import_path", "list_models", "register_model", "spec_for"]
