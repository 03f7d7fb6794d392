"""Errors a user can cause. The CLI prints ``str(error)`` on one line and exits with code 2.

Every message says what was wrong, the offending value, and what to do about it.
"""


class WattlessError(Exception):
    """A mistake the user can fix: bad input, a missing file, an unknown name or option."""


class DataError(WattlessError):
    """A data set is missing, corrupt, or does not fit the model."""


class ModelError(WattlessError):
    """An unknown model, a model that cannot be built, or weights that do not fit it."""


class ArtifactError(WattlessError):
    """A model file (.wlz, .onnx, .safetensors, .pt) is missing, corrupt or unsupported."""


class ConfigError(WattlessError):
    """An unknown technique, option or field, or a value out of range."""
