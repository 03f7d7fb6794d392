"""Run ``wattless`` in-process as a user would type it (:func:`wattless.testing.run_cli`), and train one small
model for the whole session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wattless.testing import CliResult as Result
from wattless.testing import assert_user_error, run_cli

MODEL_ARGS = ("--model", "mlp", "--dataset", "digits", "--epochs", "2", "--lr", "0.01", "--model-arg", "hidden=[32]")
"""The session's model: 2 epochs at lr 0.01 reach ~89 % test accuracy on digits (lr 1e-3 gives ~30 %)."""
FAST = ("--repeats", "3", "--batch", "1,8")
"""Few timed runs, small batches: latency numbers are not the point of these tests."""


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def cli_run():
    return run_cli


@pytest.fixture(scope="session")
def fast() -> tuple[str, ...]:
    return FAST


@pytest.fixture(scope="session")
def model_args() -> tuple[str, ...]:
    return MODEL_ARGS


@pytest.fixture(scope="session")
def check_user_error():
    """``assert_user_error`` for tests that manage their own files."""
    return assert_user_error


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """An empty current folder for the command's outputs."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def user_error(work):
    """Run a command that must fail as a user error and leave the work folder exactly as it was."""

    def check(args, *fragments: str) -> Result:
        before = snapshot(work)
        result = run_cli(*args)
        assert_user_error(result, *fragments)
        assert snapshot(work) == before, "the failed command wrote, changed or removed a file"
        return result

    return check


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def trained(models_dir) -> tuple[Path, dict]:
    """The session's digits MLP (64-32-10) and the JSON that ``train --json`` printed for it."""
    path = models_dir / "m.wlz"
    result = run_cli("train", *MODEL_ARGS, "-o", path, "--json")
    return path, result.json()


@pytest.fixture(scope="session")
def model_path(trained) -> Path:
    return trained[0]


@pytest.fixture(scope="session")
def int8_compressed(model_path, models_dir) -> tuple[Path, dict]:
    """``compress --int8`` of the session model: the ONNX file and the printed record."""
    path = models_dir / "x.onnx"
    result = run_cli("compress", model_path, "--int8", "-o", path, *FAST, "--json")
    return path, result.json()


@pytest.fixture(scope="session")
def csv_path(models_dir) -> Path:
    """200 rows: two numeric columns, a categorical ``color`` and a yes/no ``label`` that depends on both."""
    import numpy as np

    rng = np.random.default_rng(0)
    colors = rng.choice(["red", "green", "blue"], 200)
    x1, x2 = rng.normal(size=200), rng.normal(size=200)
    label = np.where(x1 + (colors == "red") > 0.5, "yes", "no")
    path = models_dir / "table.csv"
    rows = [f"{a:.4f},{b:.4f},{c},{y}" for a, b, c, y in zip(x1, x2, colors, label, strict=True)]
    path.write_text("x1,x2,color,label\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def user_factory_module(tmp_path_factory, monkeypatch) -> str:
    """The name of a fresh importable module (on sys.path) with ``tiny(input_shape, num_outputs)``."""
    import uuid

    name = f"wattless_cli_user_models_{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("usercode")
    (folder / f"{name}.py").write_text(
        "from torch import nn\n\n\n"
        "def tiny(input_shape, num_outputs):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_outputs))\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def bad_files(model_path, models_dir) -> dict[str, Path]:
    """Model files a user might be handed: random bytes, a truncated .wlz, a .wlz whose weights hold NaN."""
    import numpy as np
    import torch

    import wattless

    folder = models_dir / "bad"
    folder.mkdir()
    files = {name: folder / name for name in ("random.wlz", "truncated.wlz", "nan.wlz", "random.onnx")}
    files["random.wlz"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["random.onnx"].write_bytes(np.random.default_rng(1).bytes(4096))
    data = model_path.read_bytes()
    files["truncated.wlz"].write_bytes(data[: len(data) // 2])
    model = wattless.load(model_path)
    first = next(m for m in model.module.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        first.weight[0, 0] = float("nan")
    wattless.save(model, files["nan.wlz"])
    return files
