"""Quantization techniques: one public module per technique (found by ``techniques.discover_techniques``)."""
