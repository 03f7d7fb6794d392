"""One output adapter for models whose forward returns more than a tensor: Hugging Face's ``ModelOutput`` (its
``logits``), a dict with ``"logits"``, or a tuple whose first item is the prediction. Every engine, technique and
exporter then sees a module that maps a batch to one tensor of logits (or values)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelError

OUTPUT_KINDS = ("logits",)


def logits_of(output: Any) -> torch.Tensor:
    """The prediction tensor inside a model's output, or one error saying what the output was."""
    if isinstance(output, torch.Tensor):
        return output
    found = None
    if isinstance(output, dict):  # also Hugging Face's ModelOutput: logits, or PatchTST's prediction_logits
        found = output.get("logits", output.get("prediction_logits"))
    if found is None and isinstance(output, tuple | list) and output:
        found = output[0]
    if not isinstance(found, torch.Tensor):
        raise ModelError(f"the model returns {type(output).__name__}, with no logits tensor in it; make its forward "
                         "return a tensor of shape (batch, outputs)")
    return found


class LogitsOutput(nn.Module):
    """``model`` with its output reduced to the logits tensor (state dict keys under ``model.``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x))


def adapt_output(model: nn.Module, kind: str | None) -> nn.Module:
    """``model`` behind the adapter a spec's ``output`` names (None: as it is)."""
    if kind is None:
        return model
    if kind not in OUTPUT_KINDS:
        raise ModelError(f"unknown model output adapter {kind!r}; this wattless knows {', '.join(OUTPUT_KINDS)}")
    return LogitsOutput(model)
