"""Compression techniques: each a config plus an apply function behind one contract, registered by dotted name.

Every public module under this package is found by :func:`discover_techniques` (no list to edit).
"""

from ._registry import (
    Applied,
    Context,
    Technique,
    TechniqueConfig,
    describe_step,
    discover_techniques,
    get_technique,
    list_techniques,
    make_config,
    parse_step,
    register_technique,
    split_step,
)

__all__ = ["Applied", "Context", "Technique", "TechniqueConfig", "describe_step", "discover_techniques",
           "get_technique", "list_techniques", "make_config", "parse_step", "register_technique", "split_step"]
