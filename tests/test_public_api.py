"""The public API: every name in __all__ exists, and the verbs stay functions."""

import importlib

import wattless


def test_every_public_name_exists():
    for name in wattless.__all__:
        assert hasattr(wattless, name), name


def test_verbs_are_not_shadowed_by_subpackages():
    importlib.import_module("wattless.measurement.record")
    importlib.import_module("wattless.deploy.int8")
    for verb in ("train", "measure", "compress", "export", "load", "save"):
        assert callable(getattr(wattless, verb)), verb
        assert getattr(wattless, verb).__name__ == verb
