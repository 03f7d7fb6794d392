"""Measuring and inspecting models: one record with every figure's provenance, or a per-layer view of a file."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data import Dataset
from ..errors import ConfigError
from ..io import WattlessModel, deployable_module
from ._common import MAX_REPEATS, MAX_THREADS, check_whole, dataset_for, parse_batches, parse_engines
from ._models import as_model, open_model

DEFAULT_ENGINES = ("torch", "onnxruntime", "int8")


def timing_options(batches: str | Sequence[int], threads: int, repeats: int) -> dict[str, Any]:
    """Validated ``batches``, ``threads`` and ``repeats`` for the measuring functions."""
    return {"batches": parse_batches(batches), "threads": check_whole(threads, "--threads", 1, MAX_THREADS),
            "repeats": check_whole(repeats, "--repeats", 1, MAX_REPEATS)}


def file_metadata(path: Path) -> dict[str, Any] | None:
    """The model metadata a ``.wlz`` or ``.onnx`` file carries (architecture, data set, recipe), or None."""
    from ..artifact.metadata import check_metadata, onnx_metadata

    if path.suffix == ".wlz":
        from ..artifact import read_metadata

        return check_metadata(read_metadata(path), str(path))
    if path.suffix == ".onnx":
        from ..deploy import read_onnx_metadata

        return onnx_metadata(read_onnx_metadata(path), str(path)) or None
    return None


def measure(model: WattlessModel | str | Path, dataset: Dataset | str | None = None, *,
            engines: str | Sequence[str] = DEFAULT_ENGINES, batches: str | Sequence[int] = (1, 256), threads: int = 1,
            repeats: int = 50, architecture: str | None = None, model_kwargs: dict[str, Any] | None = None,
            trust_code: bool = False, data_dir: str | None = None, target: str | None = None,
            task: str | None = None, name: str | None = None, simulate: str | Sequence[str] | None = None,
            clock_mhz: float | None = None, simulate_partial: bool = False) -> dict[str, Any]:
    """One result record (ARCHITECTURE.md keys, each figure with its provenance) for a model in memory, a ``.wlz``
    or ``.onnx`` file, or plain weights (``.pt``/``.safetensors``) of ``architecture``.

    ``dataset`` defaults to the one the model's metadata names. Accuracy comes from running the very artifact;
    latency is timed on every engine of ``engines`` at every batch of ``batches``. ``simulate`` (accelerator
    designs: ZigZag's shipped names or ``HARDWARE.yaml[:MAPPING.yaml]``; the ``hw`` extra) adds ``simulated``:
    per design, energy per sample and latency in cycles (seconds with ``clock_mhz``), total and per layer.
    """
    from ..measurement.record import measure_module, measure_onnx

    model, dataset = as_model(model, dataset)
    options = {**timing_options(batches, threads, repeats), "engines": parse_engines(engines)}
    designs = _designs(simulate, clock_mhz)  # checked before any work
    simulation = {"designs": designs, "simulate_partial": simulate_partial} if designs else {}
    if isinstance(model, WattlessModel) and model.folded and model.path is not None and model.path.is_file():
        model = model.path  # loaded for inference: its file holds what it is (codes, not the dense floats)
    if isinstance(model, WattlessModel):
        data = dataset_for(dataset, model.meta, data_dir=data_dir, target=target, task=task)
        record = measure_module(model, data, **options, **simulation)
    else:
        path = Path(model)
        data = dataset_for(dataset, file_metadata(path), data_dir=data_dir, target=target, task=task)
        if path.suffix == ".onnx":
            record = measure_onnx(path, data, **options, **simulation)
        else:
            loaded = open_model(path, model=architecture, dataset=data, model_kwargs=model_kwargs,
                                trust_code=trust_code)
            record = measure_module(loaded, data, file_path=path if path.suffix == ".wlz" else None, **options,
                                    **simulation)
        name = name or path.name
    if name is not None:
        record["name"] = name
    return record


def _designs(simulate: str | Sequence[str] | None, clock_mhz: float | None) -> list:
    from ..measurement.simulate import architecture

    if clock_mhz is not None and not simulate:
        raise ConfigError("--clock-mhz needs --simulate ARCH")
    names = [n.strip() for n in simulate.split(",")] if isinstance(simulate, str) else list(simulate or [])
    return [architecture(name, clock_mhz=clock_mhz) for name in names if name]


def inspect(path: str | Path | WattlessModel | Any, *, trust_code: bool = False, simulate: str | None = None,
            clock_mhz: float | None = None, dataset: Dataset | str | None = None) -> dict[str, Any]:
    """What a ``.wlz`` file holds: architecture, data set, recipe, and per layer its shape, parameters, non-zeros,
    weight/activation bits, bytes in the file, MACs and estimated energy (45 nm, batch 1) with its share, and
    ``file_bytes``: where the file's bytes go (header; per layer positions, codes, tables, biases, other) against
    the entropy floor of its symbols (:func:`wattless.measurement.filebytes.file_bytes`); with
    ``simulate`` (one design), each layer's simulated energy split into compute, on-chip and off-chip memory.

    ``path`` may also be a model in memory (a :class:`WattlessModel`, or an ``nn.Module`` with ``dataset``): its
    bytes are those of the ``.wlz`` file it would be saved as (``file`` is then None)."""
    from ..io import load, save

    designs = _designs(simulate, clock_mhz)
    if len(designs) > 1:
        raise ConfigError("inspect --simulate takes one design; measure --simulate compares several")

    if isinstance(path, str | Path):
        loaded = load(path, trust_code=trust_code, keep_parametrizations=True)
        return _inspected(loaded, Path(path), str(path), designs)
    model, _ = as_model(path, dataset)
    if not isinstance(model, WattlessModel):
        raise ConfigError(f"inspect takes a .wlz path or a model, not {type(path).__name__}")
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "model.wlz"
        save(model, file, rebuildable=False)  # the bytes it would take as a file, even when no file could rebuild it
        return _inspected(model, file, None, designs)


def _inspected(loaded: WattlessModel, path: Path, shown: str | None, designs: list) -> dict[str, Any]:
    from ..measurement.filebytes import file_bytes
    from ..measurement.ops import count_params
    from ..measurement.profile import dense_fp32_counts, layer_profile, micronet_score, stored_bytes_by_layer

    module = deployable_module(loaded.module)
    params, nonzero = count_params(module)
    profile = layer_profile(loaded.module, module, loaded.input_shape)
    stored = stored_bytes_by_layer(path, [layer["name"] for layer in profile["layers"]])
    for layer in profile["layers"]:
        layer["bytes"] = stored.get(layer["name"])
    energy = {k: v for k, v in profile["energy"].items() if k != "layers"}
    simulated = None
    if designs:
        from ..measurement.simulate import simulate as run_simulation

        simulated = run_simulation(loaded, designs[0], partial=True)
        by_name = {layer["name"]: layer for layer in simulated["layers"]}
        for layer in profile["layers"]:
            found = by_name.get(layer["name"])
            if found:
                layer["simulated"] = {f"{part}_j": found[f"{part}_pj"] * 1e-12  # joules, as energy_j
                                      for part in ("compute", "onchip", "offchip")}
    return {"simulated": simulated, "file": shown, "size_bytes": path.stat().st_size,
            "model": loaded.spec, "task": loaded.task,
            "dataset": (loaded.meta.get("dataset") or {}).get("name"), "seed": loaded.meta.get("seed"),
            "recipe": loaded.recipe, "params": params, "nonzero_params": nonzero, "macs": profile["macs"],
            "bops": profile["bops"], "energy_j_per_sample": energy, "micronet": profile["micronet"],
            "micronet_score": micronet_score(profile["micronet"], dense_fp32_counts(params, profile["macs"])),
            "layers": profile["layers"], "file_bytes": file_bytes(path, [layer["name"] for layer in profile["layers"]])}
