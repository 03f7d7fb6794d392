"""Pruning techniques."""

from . import magnitude  # noqa: F401  (registers prune.magnitude)
