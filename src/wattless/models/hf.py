"""Hugging Face architectures as ``hf:NAME`` models (optional extra ``hf``: ``pip install 'wattless[hf]'``).

Each is built from a configuration only (no download): small defaults sized for the data set (its input shape and
number of classes), overridden field by field with ``--model-arg`` (``hidden_size=64``). ``pretrained=REPO`` loads
weights from the local Hugging Face cache only; wattless never fetches code or weights from the network.

The model sits behind one adapter (:class:`HFModel`): the input layout wattless uses (images ``(C, H, W)``, series
``(channels, length)``, token ids as floats) is turned into what the architecture takes, and its ``ModelOutput`` is
reduced to the logits, so every technique, engine and exporter sees a plain ``batch -> logits`` module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ._adapter import logits_of

PREFIX = "hf:"


def _patchtst(shape, outputs) -> tuple[str, dict[str, Any], str]:
    """The zoo's ts_transformer shape (patches of 5 steps, d_model 64, 2 layers, 4 heads). ``scaling=None``: wattless
    already standardizes series with train statistics, and PatchTST's own per-sample scaling discards the amplitudes
    BasicMotions' classes differ by (87.5% vs 22.5% test accuracy after 30 epochs, seed 0, in this repository)."""
    channels, length = shape
    patch = next((p for p in (5, 4, 8, 10, 2) if length % p == 0 and length // p >= 2), 1)
    return "PatchTST", {"num_input_channels": channels, "context_length": length, "patch_length": patch,
                        "patch_stride": patch, "num_targets": outputs, "d_model": 64, "num_attention_heads": 4,
                        "num_hidden_layers": 2, "scaling": None}, "series"


def _vit(shape, outputs):
    channels, height, _ = shape
    patch = next((p for p in (7, 8, 4, 2) if height % p == 0), 1)
    return "ViT", {"image_size": height, "patch_size": patch, "num_channels": channels, "hidden_size": 32,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                   "num_labels": outputs}, "image"


def _convnext(shape, outputs):
    return "ConvNext", {"num_channels": shape[0], "image_size": shape[1], "hidden_sizes": [16, 32], "depths": [1, 1],
                        "num_stages": 2, "patch_size": 2, "num_labels": outputs}, "image"


def _resnet(shape, outputs):
    return "ResNet", {"num_channels": shape[0], "embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1],
                      "num_labels": outputs}, "image"


def _mobilevit(shape, outputs):
    return "MobileViT", {"num_channels": shape[0], "image_size": shape[1], "patch_size": 2,
                         "hidden_sizes": [32, 48, 64], "neck_hidden_sizes": [8, 16, 24, 32, 40, 48, 64],
                         "num_labels": outputs}, "image"


def _bert(shape, outputs):
    return "Bert", {"vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "intermediate_size": 64, "max_position_embeddings": max(shape[0], 8), "num_labels": outputs},\
        "tokens"


ARCHITECTURES: dict[str, tuple[Callable, str, int]] = {
    "patchtst": (_patchtst, "ForClassification", 2), "vit": (_vit, "ForImageClassification", 3),
    "convnext": (_convnext, "ForImageClassification", 3), "resnet": (_resnet, "ForImageClassification", 3),
    "mobilevit": (_mobilevit, "ForImageClassification", 3), "bert": (_bert, "ForSequenceClassification", 1),
}
"""``hf:NAME`` -> (default config for an input shape and class count, the class suffix, the input's rank)."""


class HFModel(nn.Module):
    """A Hugging Face model behind wattless's input layout and a logits output."""

    def __init__(self, model: nn.Module, layout: str):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "series":  # (batch, channels, length) -> PatchTST's (batch, length, channels)
            return logits_of(self.model(past_values=x.transpose(1, 2)))
        if self.layout == "tokens":
            # token ids travel as floats through wattless's float pipelines; clamped into the vocabulary (the
            # identity on real ids) so the synthetic samples that timing, tracing and export checks draw are ids too
            ids = x.long().clamp(0, self.model.config.vocab_size - 1)
            return logits_of(self.model(input_ids=ids))
        return logits_of(self.model(pixel_values=x))


def build_hf(name: str, input_shape: tuple[int, ...], num_outputs: int, kwargs: dict[str, Any]) -> nn.Module:
    """``hf:NAME`` for ``input_shape`` and ``num_outputs``, its config fields overridden by ``kwargs``."""
    transformers = _transformers()
    key = name[len(PREFIX):].lower()
    if key not in ARCHITECTURES:
        raise ModelError(f"unknown Hugging Face architecture {name!r}; use one of "
                         f"{', '.join(PREFIX + k for k in ARCHITECTURES)}")
    defaults, suffix, rank = ARCHITECTURES[key]
    if len(input_shape) != rank:
        raise ModelError(f"{name} takes samples of rank {rank}, got shape {list(input_shape)}")
    prefix, fields, layout = defaults(tuple(input_shape), num_outputs)
    options = dict(kwargs)
    pretrained = options.pop("pretrained", None)
    config_class = getattr(transformers, f"{prefix}Config")
    model_class = getattr(transformers, f"{prefix}{suffix}")
    if pretrained is not None:
        return HFModel(_pretrained(model_class, config_class, str(pretrained), num_outputs, options), layout)
    unknown = sorted(set(options) - set(config_class().to_dict()))
    if unknown:
        raise ModelError(f"{name}: unknown config field(s) {', '.join(unknown)}; see transformers.{prefix}Config")
    try:
        config = config_class(**{**fields, **options})
        return HFModel(model_class(config), layout)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelError(f"{name}: cannot build it with {options}: {str(exc)[:200]}") from None


def _pretrained(model_class, config_class, repo: str, num_outputs: int, options: dict[str, Any]) -> nn.Module:
    """Weights from the local Hugging Face cache only (wattless never downloads); a head of ``num_outputs``."""
    try:
        config = config_class.from_pretrained(repo, local_files_only=True, num_labels=num_outputs, **options)
        if torch.empty(0).device.type == "meta":  # only its size is wanted (the trainable-size check): no weights
            return model_class(config)
        return model_class.from_pretrained(repo, config=config, local_files_only=True, ignore_mismatched_sizes=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"pretrained weights {repo!r} are not in the local Hugging Face cache and wattless does not "
                         f"download ({str(exc).splitlines()[0][:120]}); fetch them where there is internet "
                         "(hf download REPO) or train from the config") from None


def _transformers():
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise ConfigError("hf: models need Hugging Face transformers; install it: pip install 'wattless[hf]'") \
            from None
