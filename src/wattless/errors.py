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


class NothingWithinBudget(ConfigError):
    """No candidate of a search or ladder stayed within the accuracy budget; ``result`` holds every one tried."""

    def __init__(self, message: str, result: object):
        super().__init__(message)
        self.result = result


class TrialsFailed(ConfigError):
    """Some trials of a sweep failed (a rerun retries them); ``result`` is the sweep's result."""

    def __init__(self, message: str, result: object):
        super().__init__(message)
        self.result = result
