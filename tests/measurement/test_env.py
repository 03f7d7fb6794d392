"""The environment record: complete, JSON-serialisable and truthful about versions and threads."""

from __future__ import annotations

import json

import numpy as np
import torch

import wattless.measurement
from wattless.measurement import collect_env

ENV_KEYS = {"cpu", "logical_cores", "threads", "os", "python", "torch", "onnxruntime", "onnx", "numpy",
            "energy_meter"}


def test_collect_env_is_complete_and_serialisable():
    env = collect_env(threads=3)

    assert set(env) == ENV_KEYS
    assert json.loads(json.dumps(env)) == env
    assert env["threads"] == 3
    assert env["energy_meter"] == "none"
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    assert env["cpu"] and env["logical_cores"] >= 1


def test_threads_default_to_torchs_current_count():
    assert collect_env()["threads"] == torch.get_num_threads()


def test_every_exported_name_exists():
    assert all(hasattr(wattless.measurement, name) for name in wattless.measurement.__all__)
