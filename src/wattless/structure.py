"""Structural edits: changes to a model's architecture (fewer channels, a layer split in two factors)
recorded as a JSON list and replayed on a freshly built model, so edited models load without pickle.

A technique that changes the architecture calls :func:`record_edit` with a JSON-serialisable entry
whose ``kind`` names a function registered with :func:`register_edit`. Model files store the list in
their metadata; loading builds the original architecture from its spec, replays the edits in order
(on the ``meta`` device first, so nothing large is allocated before the shapes are checked), then
loads the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

Edit = dict[str, Any]
Replay = Callable[[nn.Module, Edit], None]
Reattach = Callable[[nn.Module, dict[str, Any]], None]
"""``reattach(model, tensors)``: put back the submodules a technique attached (e.g. activation quantizers) whose
tensors a model file holds, so the file's tensors load into the built model."""

_EDITS_ATTRIBUTE = "_wattless_structure"
_REPLAYS: dict[str, Replay] = {}
_REATTACHERS: dict[str, Reattach] = {}


def register_edit(kind: str) -> Callable[[Replay], Replay]:
    """Register ``replay(model, edit)``, which re-applies one recorded edit in place."""

    def decorate(replay: Replay) -> Replay:
        _REPLAYS[kind] = replay
        return replay

    return decorate


def record_edit(model: nn.Module, edit: Edit) -> None:
    """Append ``edit`` (JSON-serialisable, with a registered ``kind``) to the model's edit log."""
    if edit.get("kind") not in _REPLAYS:
        raise ValueError(f"structural edit kind {edit.get('kind')!r} is not registered")
    setattr(model, _EDITS_ATTRIBUTE, [*edits_of(model), edit])


def edits_of(model: nn.Module) -> list[Edit]:
    """The edits applied to ``model`` so far, oldest first."""
    return list(getattr(model, _EDITS_ATTRIBUTE, []))


def replay_edits(model: nn.Module, edits: Any) -> None:
    """Re-apply ``edits`` (read from a file) to a freshly built model; ValueError on anything malformed."""
    if not isinstance(edits, list):
        raise ValueError("the structural edit log is not a list")
    for edit in edits:
        if not isinstance(edit, dict) or edit.get("kind") not in _REPLAYS:
            raise ValueError(f"unknown structural edit {str(edit)[:80]}")
        _REPLAYS[edit["kind"]](model, edit)
        record_edit(model, edit)


def register_attachment(kind: str) -> Callable[[Reattach], Reattach]:
    """Register ``reattach(model, tensors)`` for submodules of ``kind`` that techniques attach to layers."""

    def decorate(reattach: Reattach) -> Reattach:
        _REATTACHERS[kind] = reattach
        return reattach

    return decorate


def reattach_attachments(model: nn.Module, tensors: dict[str, Any]) -> None:
    """Run every registered re-attacher on a freshly built ``model`` before ``tensors`` are loaded into it."""
    for reattach in _REATTACHERS.values():
        reattach(model, tensors)
