"""Compression techniques, each a config plus an apply function, registered by dotted name."""

from . import distill, factorize, prune, quantize, share  # noqa: F401  (registers the techniques)
from ._registry import (
    Context,
    TechniqueConfig,
    describe_step,
    get_technique,
    list_techniques,
    make_config,
    parse_step,
    register_technique,
    split_step,
)

__all__ = ["Context", "TechniqueConfig", "describe_step", "get_technique", "list_techniques", "make_config",
           "parse_step", "register_technique", "split_step"]
