"""Pruning techniques."""

from . import magnitude, nm, structured  # noqa: F401  (registers prune.magnitude, prune.nm, prune.structured)
