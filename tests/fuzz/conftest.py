"""Fuzzing every reader of outside input through the command line (issue 17): the hypothesis profiles, the ``fuzz``
marker and the valid seed files the properties mutate.

Profiles, chosen by ``WATTLESS_FUZZ_PROFILE``: ``ci`` (the default, what ``make test`` runs: a few examples per
property, derandomized so that every run tries the same inputs) and ``long`` (``make fuzz``: 25 times as many,
random, shrunk to a minimal example on failure). The profiles are named ``fuzz-ci`` and ``fuzz-long`` and applied
per test (``fuzzkit.fuzz_settings``), so that the rest of the suite keeps hypothesis' own defaults.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

sys.path.insert(0, str(Path(__file__).parent))  # fuzzkit, the modules' shared helpers

from fuzzkit import TINY_STUDY, Seed, run_hostile  # noqa: E402

from wattless.testing import run_cli  # noqa: E402

_QUIET_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                 HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "fuzz-ci", max_examples=20, derandomize=True, database=None, deadline=timedelta(seconds=90),
    phases=(Phase.explicit, Phase.generate), suppress_health_check=_QUIET_CHECKS, print_blob=False)
settings.register_profile(
    "fuzz-long", max_examples=500, derandomize=False, deadline=timedelta(seconds=120), print_blob=True,
    suppress_health_check=_QUIET_CHECKS)

TRAIN_TINY = ("--model", "mlp", "--dataset", "digits", "--epochs", "1", "--model-arg", "hidden=[8]", "-q")
"""The seed model: a 64-8-10 MLP on digits, one epoch (under a second)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: property-based tests of every reader of outside input (tests/fuzz)")


@pytest.fixture(scope="session")
def seeds(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-seeds")


@pytest.fixture(scope="session")
def tiny_wlz(seeds) -> bytes:
    """The bytes of the seed model file (and, made once, what every command below imports: so that an example's
    peak memory is its own, not a first import's)."""
    path = seeds / "tiny.wlz"
    result = run_cli("train", *TRAIN_TINY, "-o", path)
    assert result.code == 0, result.err
    for args in (("inspect", path), ("measure", path, "--engines", "torch", "--batch", "1", "--repeats", "1")):
        assert run_cli(*args).code == 0
    return Seed(path.read_bytes())


@pytest.fixture(scope="session")
def tiny_onnx(seeds, tiny_wlz) -> bytes:
    """The seed model exported to ONNX fp32 (its ``wattless`` metadata is the .wlz file's)."""
    path = seeds / "tiny.onnx"
    result = run_cli("export", seeds / "tiny.wlz", "-o", path)
    assert result.code == 0, result.err
    assert run_cli("measure", path, "--engines", "onnxruntime", "--batch", "1", "--repeats", "1").code == 0
    return Seed(path.read_bytes())


@pytest.fixture(scope="session")
def swept(seeds) -> bytes:
    """The runs database of the seed study, swept once for real (its artifacts stay in the session's folder)."""
    folder = seeds / "sweep"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(TINY_STUDY)
    result = run_cli("sweep", folder / "tiny.yaml", "--db", folder / "runs.db", "--out", folder / "runs",
                     "--workers", "1", "-q")
    assert result.code == 0, result.err
    return Seed((folder / "runs.db").read_bytes())


@pytest.fixture(scope="session")
def hostile():
    """:func:`fuzzkit.run_hostile`: run a command on hostile input and check the property."""
    return run_hostile
