"""The packed `.wlz` model file: named tensors plus JSON metadata, in a safetensors container.

The format is specified in ``wattless.artifact.format``; encodings live in
``wattless.artifact.encodings``.
"""

from wattless.artifact.format import FORMAT_VERSION
from wattless.artifact.reader import read_artifact, read_encodings, read_metadata, read_stored_sizes
from wattless.artifact.writer import write_artifact

__all__ = ["FORMAT_VERSION", "read_artifact", "read_encodings", "read_metadata", "read_stored_sizes", "write_artifact"]
