"""Model files: the trained model with everything needed to rebuild and evaluate it.

A :class:`WattlessModel` is an ``nn.Module`` plus its metadata (architecture spec, task, data set
description with preprocessing, training summary, applied recipe, seed). ``save`` writes a ``.wlz``
file; ``load`` reads ``.wlz`` files and imports plain weights (``.safetensors`` or a ``state_dict``
``.pt``, loaded with ``weights_only=True``) when told which architecture they belong to.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import __version__
from .artifact import read_artifact, write_artifact
from .errors import ArtifactError, ModelError
from .models import build_model, check_input_shape


@dataclass
class WattlessModel:
    """An ``nn.Module`` with the metadata that makes it reproducible and measurable."""

    module: nn.Module
    meta: dict[str, Any] = field(default_factory=dict)

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


def deployable_module(module: nn.Module) -> nn.Module:
    """A copy with every parametrization folded into a plain tensor: what a file stores and ships."""
    plain = copy.deepcopy(module)
    for sub in plain.modules():
        if parametrize.is_parametrized(sub):
            # A deep copy shares the original's generated Parametrized* class, and removing a
            # parametrization deletes its property from that class: give the copy a class of its own.
            shared = type(sub)
            sub.__class__ = type(shared.__name__, shared.__bases__, dict(shared.__dict__))
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
    return plain


def state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The deployable state dict as contiguous CPU tensors."""
    return {k: v.detach().cpu().contiguous() for k, v in deployable_module(module).state_dict().items()}


def save(model: WattlessModel, path: str | Path) -> int:
    """Write ``model`` to a ``.wlz`` file atomically; returns its size in bytes.

    The same model and metadata always give a byte-identical file.
    """
    meta = {**model.meta, "wattless_version": __version__}
    return write_artifact(path, state_tensors(model.module), meta)


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


def module_from_tensors(spec: dict[str, Any], tensors: dict[str, torch.Tensor], *, source: str,
                        trust_code: bool = False) -> nn.Module:
    """Build the architecture and load ``tensors`` into it after checking every name and shape.

    The architecture is first built on the ``meta`` device (no memory), so a corrupt spec that asks
    for huge layers is refused before anything is allocated.
    """
    with torch.device("meta"):
        skeleton = build_model(spec, trust_code=trust_code)
    _check_shapes(skeleton, tensors, source)
    module = build_model(spec, trust_code=trust_code)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{source}: cannot load weights: {str(exc).splitlines()[0]}") from exc
    for name, value in module.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ArtifactError(f"{source}: weight {name!r} holds NaN or infinite values; retrain or re-export it")
    return module.eval()


def load(path: str | Path, *, trust_code: bool = False) -> WattlessModel:
    """Read a ``.wlz`` model file (no pickle; user code only with ``trust_code``)."""
    tensors, meta = read_artifact(path)
    spec = meta.get("model")
    if not isinstance(spec, dict):
        raise ArtifactError(f"{path}: the file has no model description; re-create it with `wattless train`")
    try:
        module = module_from_tensors(spec, tensors, source=str(path), trust_code=trust_code)
    except ModelError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    return WattlessModel(module, meta)


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
