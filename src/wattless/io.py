"""Model files: the trained model with everything needed to rebuild and evaluate it.

A :class:`WattlessModel` is an ``nn.Module`` plus its metadata (architecture spec, task, data set
description with preprocessing, training summary, applied recipe, seed). ``save`` writes a ``.wlz``
file; ``load`` reads ``.wlz`` files and imports plain weights (``.safetensors`` or a ``state_dict``
``.pt``, loaded with ``weights_only=True``) when told which architecture they belong to.

``load`` returns a model ready for inference (parametrizations folded into plain tensors, eval mode);
``load(..., keep_parametrizations=True)`` keeps the packed weights as parametrizations, which is what
compressing further or saving the packed form again needs.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._version import __version__
from .artifact import read_artifact, read_metadata, write_artifact
from .artifact.metadata import check_metadata
from .errors import ArtifactError, ConfigError, ModelError
from .models import build_model, check_input_shape
from .models._registry import IN_MEMORY, not_rebuildable
from .packed import PackedWeight, packed_kind
from .structure import edits_of, reattach_attachments, replay_edits

PACKED_PREFIX = "packed."
"""Tensor names of packed parts in a model file: ``packed.<layer>.<tensor>.<part>``."""


@dataclass
class WattlessModel:
    """An ``nn.Module`` with the metadata that makes it reproducible and measurable."""

    module: nn.Module
    meta: dict[str, Any] = field(default_factory=dict)
    folded: bool = False
    """True when loaded for inference from a file with packed weights: they are dense now, so saving this
    model would store dense floats (:func:`save` refuses; load with ``keep_parametrizations=True``)."""
    path: Path | None = None
    """The file it was loaded from, if any."""

    def copy(self) -> WattlessModel:
        """An independent copy: module deep-copied, metadata copied through JSON."""
        return WattlessModel(copy.deepcopy(self.module), json.loads(json.dumps(self.meta)), self.folded, self.path)

    @property
    def spec(self) -> dict[str, Any]:
        """The architecture spec: ``{"name", "kwargs", "input_shape", "num_outputs"}``."""
        return self.meta["model"]

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def task(self) -> str:
        return self.meta.get("task", "classification")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["input_shape"])

    @property
    def recipe(self) -> list[dict[str, Any]]:
        return list(self.meta.get("recipe", []))


def _own_parametrized_class(sub: nn.Module) -> None:
    """Give a deep-copied parametrized module a class of its own.

    A deep copy shares the original's generated ``Parametrized*`` class, and removing a
    parametrization deletes its property from that class, which would break the original.
    """
    shared = type(sub)
    sub.__class__ = type(shared.__name__, shared.__bases__, dict(shared.__dict__))


def _tensor_key(module_name: str, tensor_name: str) -> str:
    return f"{module_name}.{tensor_name}" if module_name else tensor_name


def _fold(module: nn.Module, *, keep_packed: bool) -> tuple[nn.Module, dict[str, PackedWeight]]:
    """A copy with parametrizations folded into plain tensors; with ``keep_packed``, the packed
    weights (last in their chain) are returned by tensor key instead of being folded."""
    plain = copy.deepcopy(module)
    packed: dict[str, PackedWeight] = {}
    for name, sub in plain.named_modules():
        if parametrize.is_parametrized(sub):
            _own_parametrized_class(sub)
            for tensor_name in list(sub.parametrizations.keys()):
                last = sub.parametrizations[tensor_name][-1]
                if keep_packed and isinstance(last, PackedWeight):
                    packed[_tensor_key(name, tensor_name)] = last
                parametrize.remove_parametrizations(sub, tensor_name, leave_parametrized=True)
    return plain, packed


def deployable_module(module: nn.Module) -> nn.Module:
    """A copy with every parametrization folded into a plain tensor: what runs in a dense engine."""
    return _fold(module, keep_packed=False)[0]


def fp32_state_dict_bytes(model: WattlessModel) -> int:
    """Size in bytes of the model's fp32 ``state_dict`` written as a ``.safetensors`` file."""
    from safetensors.torch import save_file

    tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in state_tensors(model.module).items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fp32.safetensors")
        save_file(tensors, path)
        return os.path.getsize(path)


def state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The deployable state dict as contiguous CPU tensors (dense floats, no packing)."""
    return {k: v.detach().cpu().contiguous() for k, v in deployable_module(module).state_dict().items()}


def packed_state(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """What a model file stores: plain tensors, packed weights as their parts (codes at their bit width,
    which the writer may store sparse or range-coded when smaller), the artifact encodings, and the
    ``packed`` metadata describing each packed tensor."""
    plain, packed = _fold(module, keep_packed=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in plain.state_dict().items() if k not in packed}
    encodings: dict[str, Any] = {}
    described: dict[str, Any] = {}
    for key, weight in packed.items():
        parts, part_encodings, info = weight.pack()
        for part, value in parts.items():
            tensors[f"{PACKED_PREFIX}{key}.{part}"] = value.detach().cpu().contiguous()
            encodings[f"{PACKED_PREFIX}{key}.{part}"] = part_encodings[part]
        described[key] = {"kind": weight.kind, "info": info, "shape": list(weight.decode().shape)}
    return tensors, encodings, described


def save(model: WattlessModel, path: str | Path, *, rebuildable: bool = True) -> int:
    """Write ``model`` to a ``.wlz`` file atomically; returns its size in bytes.

    Quantized weights are stored as their codes: at their bit width, or entropy-coded when that is
    smaller. The same model and metadata always give a byte-identical file. ``rebuildable=False`` writes even a
    model wrapped from memory whose class no file can rebuild: only to measure its packed size.
    """
    if model.folded:
        raise ConfigError("this model was loaded for inference, with its packed (quantized) weights folded into "
                          "dense floats, so its file would hold dense weights; load it with "
                          "keep_parametrizations=True to save or compress it further")
    name = str(model.spec.get("name", ""))
    if rebuildable and name.startswith(IN_MEMORY):
        raise ModelError(not_rebuildable(name, model.spec.get("unsaved")))
    tensors, encodings, described = packed_state(model.module)
    meta = {**model.meta, "wattless_version": __version__, "packed": described,
            "structure": edits_of(model.module)}
    return write_artifact(path, tensors, meta, encodings=encodings)


def _check_shapes(skeleton: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected.keys() != found.keys():
        missing = sorted(expected.keys() - found.keys())[:3]
        unexpected = sorted(found.keys() - expected.keys())[:3]
        raise ArtifactError(f"{source}: weights do not fit the model (missing {missing}, unexpected {unexpected}); "
                            "check --model and its options")
    wrong = [k for k in expected if expected[k] != found[k]]
    if wrong:
        k = wrong[0]
        raise ArtifactError(f"{source}: weight {k!r} has shape {list(found[k])}, the model needs "
                            f"{list(expected[k])}; check --model and its options")
    floats = [k for k, v in skeleton.state_dict().items() if v.is_floating_point()]
    wrong = [k for k in floats if not tensors[k].is_floating_point()]
    if wrong:  # load_state_dict would cast integers to floats without a word
        k = wrong[0]
        raise ArtifactError(f"{source}: weight {k!r} holds {str(tensors[k].dtype).removeprefix('torch.')} values, "
                            "the model needs floating-point weights; save the trained model's float state_dict")


def _unpack_weights(tensors: dict[str, torch.Tensor], described: Any, source: str) -> dict[str, PackedWeight]:
    """Rebuild the packed weights named in the file's ``packed`` metadata from their stored parts."""
    if not isinstance(described, dict):
        raise ArtifactError(f"{source}: bad packed-weight table; re-create the file")
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(PACKED_PREFIX):
            key, _, part = name[len(PACKED_PREFIX):].rpartition(".")
            parts.setdefault(key, {})[part] = value
    if set(parts) != set(described):
        raise ArtifactError(f"{source}: packed parts and packed-weight table differ; re-create the file")
    weights = {}
    for key, entry in described.items():
        try:
            weight = packed_kind(entry["kind"]).unpack(parts[key], entry["info"])
            if list(weight.decode().shape) != entry["shape"]:
                raise ValueError(f"decodes to {list(weight.decode().shape)}, not {entry['shape']}")
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise ArtifactError(f"{source}: packed weight {key!r} is corrupt ({str(exc)[:120]}); "
                                "re-create the file") from exc
        weights[key] = weight
    return weights


def _built(spec: dict[str, Any], structure: Any, trust_code: bool, source: str) -> nn.Module:
    """The architecture of ``spec`` with the recorded structural edits replayed."""
    model = build_model(spec, trust_code=trust_code)
    try:
        replay_edits(model, structure or [])
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
        raise ArtifactError(f"{source}: cannot replay the model's structural edits ({str(exc)[:120]}); "
                            "re-create the file") from exc
    return model


def module_from_tensors(spec: dict[str, Any], tensors: dict[str, torch.Tensor], *, source: str,
                        trust_code: bool = False, packed: Any = None, structure: Any = None) -> nn.Module:
    """Build the architecture and load ``tensors`` into it after checking every name and shape.

    The architecture is first built on the ``meta`` device (no memory), so a corrupt spec that asks
    for huge layers is refused before anything is allocated. Packed weights come back as the same
    parametrizations they were saved from, and activation quantizers (``<layer>.input_quant.*`` tensors)
    are re-attached, so the model computes exactly what was saved.
    """
    from .techniques import discover_techniques

    discover_techniques()  # the techniques register the stored forms: structural edits, attached quantizers
    weights = _unpack_weights(tensors, packed or {}, source)
    dense = {k: v for k, v in tensors.items() if not k.startswith(PACKED_PREFIX)}
    dense.update({key: weight.decode() for key, weight in weights.items()})
    with torch.device("meta"):
        skeleton = _built(spec, structure, trust_code, source)
    reattach_attachments(skeleton, dense)
    _check_shapes(skeleton, dense, source)
    module = _built(spec, structure, trust_code, source)
    reattach_attachments(module, dense)
    try:
        module.load_state_dict(dense, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{source}: cannot load weights: {str(exc).splitlines()[0]}") from exc
    for name, value in module.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ArtifactError(f"{source}: weight {name!r} holds NaN or infinite values; retrain or re-export it")
    for key, weight in weights.items():
        module_name, _, tensor_name = key.rpartition(".")
        parametrize.register_parametrization(module.get_submodule(module_name), tensor_name, weight)
    return module.eval()


SMALL_TENSOR_BYTES = 2**16
"""Bytes a stored tensor may decode to beyond what its weight holds (activation quantizers, codebooks)."""


def _tensor_limits(meta: dict[str, Any], trust_code: bool, source: str) -> Callable[[str], int]:
    """The most bytes each stored tensor of a model file may decode to: what its weight in the architecture the
    metadata describes holds (8 bytes an element, whatever the dtype), so that a forged shape is refused before
    anything that size is allocated. Built on the ``meta`` device: no memory."""
    from .techniques import discover_techniques

    discover_techniques()
    with torch.device("meta"):
        skeleton = _built(meta["model"], meta.get("structure"), trust_code, source)
    sizes = {name: value.numel() * 8 for name, value in skeleton.state_dict().items()}

    def limit(name: str) -> int:
        key = name[len(PACKED_PREFIX):].rpartition(".")[0] if name.startswith(PACKED_PREFIX) else name
        return sizes.get(key, 0) + SMALL_TENSOR_BYTES

    return limit


def load(path: str | Path, *, trust_code: bool = False, keep_parametrizations: bool = False) -> WattlessModel:
    """Read a ``.wlz`` model file (no pickle; user code only with ``trust_code``).

    The module comes back ready to run at dense speed: packed weights folded into plain tensors, eval mode.
    ``keep_parametrizations=True`` keeps them as parametrizations (each call decodes the codes again), which
    further compression and saving the packed form need.
    """
    if Path(path).suffix.lower() == ".onnx":
        raise ArtifactError(f"{path} is an ONNX file: `wattless measure` runs it; inspect, compress and export take "
                            "the .wlz model it was exported from")
    meta = check_metadata(read_metadata(path), str(path))
    try:
        tensors, _ = read_artifact(path, tensor_limit=_tensor_limits(meta, trust_code, str(path)))
        module = module_from_tensors(meta["model"], tensors, source=str(path), trust_code=trust_code,
                                     packed=meta.get("packed"), structure=meta.get("structure"))
    except ModelError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    packed = meta.pop("packed", None)
    meta.pop("structure", None)
    check_recipe_versions(meta.setdefault("recipe", []), str(path))
    if keep_parametrizations or not packed:
        return WattlessModel(module, meta, path=Path(path))
    return WattlessModel(deployable_module(module).eval(), meta, folded=True, path=Path(path))


def check_recipe_versions(recipe: Any, source: str) -> None:
    """Refuse a file whose recipe holds a technique config newer than this wattless reads (ArtifactError)."""
    from .techniques import get_technique

    if not isinstance(recipe, list):
        raise ArtifactError(f"{source}: the model's recipe is not a list of steps; re-create the file")
    for step in recipe:
        if not isinstance(step, dict) or not isinstance(step.get("config", {}), dict):
            raise ArtifactError(f"{source}: a recipe step is not a mapping with a config; re-create the file")
        try:
            known = get_technique(str(step.get("technique"))).config_type.current_version()
        except ConfigError:
            continue  # a technique this wattless does not have: the step is history, nothing to run
        version = step.get("config", {}).get("version", 1)
        if isinstance(version, int) and version > known:
            raise ArtifactError(f"{source}: step {step.get('technique')} has config version {version}, newer than "
                                f"this wattless reads ({known}); upgrade wattless")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Plain weights from a ``.safetensors`` file or a ``state_dict`` saved with ``torch.save``."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"weights file {str(path)!r} not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ArtifactError(f"{path}: not a readable .safetensors file ({exc})") from exc
    try:
        with warnings.catch_warnings():  # torch warns about raw pickles; the one error line below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on corrupt or unsafe files
        raise ArtifactError(f"{path}: not a plain state_dict of tensors (it is corrupt, or holds pickled objects "
                            "that are not loaded for safety); save `model.state_dict()` with torch.save, "
                            "or use .safetensors") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"{path}: expected a state_dict (names -> tensors); save `model.state_dict()`")
    return state


def import_weights(path: str | Path, spec: dict[str, Any], meta: dict[str, Any], *,
                   trust_code: bool = False) -> WattlessModel:
    """Wrap plain weights in a :class:`WattlessModel` for the architecture ``spec``."""
    tensors = read_weights(path)
    module = module_from_tensors(spec, tensors, source=str(path), trust_code=trust_code)
    check_input_shape(module, tuple(spec["input_shape"]))
    return WattlessModel(module, {**meta, "model": spec, "imported_from": Path(path).name})
