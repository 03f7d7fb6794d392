"""Pruning techniques: unstructured magnitude, N:M, and structured (channels removed, the model shrinks)."""
