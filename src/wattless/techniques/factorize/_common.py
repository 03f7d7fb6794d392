"""What every factorization shares: the config base with its one-rank-rule check, layer selection,
replacing a layer by its factors, and fine-tuning."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator
from torch import nn
from torch.nn.utils import parametrize

from ...errors import ConfigError
from ...models._inputs import error_line, zero_sample_forward
from ...structure import record_edit
from ...train import LearningRateValue
from .._registry import Context, TechniqueConfig
from .._registry import finetune as finetune_weights

MIN_SAVING = 0.1
"""A layer is factorized only when its factors hold at most 90% of its weights: smaller gains add layers (and
latency) for next to nothing, and the edit's own record can outweigh them in the file."""


def worth_factorizing(factor_params: int, layer_params: int) -> bool:
    """True when factors of ``factor_params`` weights save at least :data:`MIN_SAVING` of ``layer_params``."""
    return factor_params <= (1 - MIN_SAVING) * layer_params


class FactorizeConfig(TechniqueConfig):
    """Fields of every factorization; subclasses name their rank rules, of which exactly one is given."""

    model_config = ConfigDict(coerce_numbers_to_str=True)  # nn.Sequential layer names such as 1 in layers=[1]
    RANK_RULES: ClassVar[tuple[str, ...]] = ()
    layers: list[str] | None = Field(None, description="layer names; default: every supported layer")
    finetune_epochs: int = Field(2, ge=0, le=1000)
    lr: LearningRateValue = Field(1e-3, description="fine-tuning learning rate")

    @model_validator(mode="before")
    @classmethod
    def _default_rule_only_alone(cls, data: Any) -> Any:
        """The first rank rule has a default, which stands aside when another rule is given."""
        if isinstance(data, dict) and cls.RANK_RULES and cls.RANK_RULES[0] not in data:
            if any(data.get(rule) is not None for rule in cls.RANK_RULES[1:]):
                return {**data, cls.RANK_RULES[0]: None}
        return data

    @model_validator(mode="after")
    def _exactly_one_rank_rule(self) -> FactorizeConfig:
        given = [rule for rule in self.RANK_RULES if getattr(self, rule) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(self.RANK_RULES)}; got {', '.join(given) or 'none'}")
        return self


def having(supported: Callable[[nn.Module], bool], what: str) -> Callable[[nn.Module], str | None]:
    """``applies_to`` of a factorization: the model needs a layer that ``supported`` accepts (``what``)."""
    return lambda model, cfg=None: (None if any(supported(m) for m in model.modules())
                                    else f"it has no {what} to factorize")


def select_layers(model: nn.Module, cfg: FactorizeConfig, supported: Callable[[nn.Module], bool], what: str,
                  default_names: list[str] | None = None) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the layers to factorize: ``cfg.layers``, else those of ``default_names`` that are
    ``supported``, else every ``supported`` layer (``what`` describes them in errors).

    Raises:
        ConfigError: a named layer does not exist or is not supported, or was already pruned or quantized
            (factorize first: its factors would drop the mask or codes).
    """
    modules = dict(model.named_modules())
    candidates = [name for name, module in modules.items() if supported(module)]
    if not candidates:
        raise ConfigError(f"this model has no {what} to factorize; use another technique (e.g. factorize.svd for "
                          "Linear layers, prune.* or quantize.*)")
    if cfg.layers is None:
        chosen = [name for name in candidates if default_names is None or name in default_names]
        if not chosen:
            raise ConfigError(f"this model's only {what} ({', '.join(candidates)}) produce its outputs, which this "
                              "technique leaves whole by default; name them with layers=[...] to factorize them")
    else:
        for name in cfg.layers:
            if name not in candidates:
                found = f"a {type(modules[name]).__name__}" if name in modules else "not in the model"
                raise ConfigError(f"layer {name!r} is {found}; this technique factorizes {what}: {candidates}")
        chosen = list(dict.fromkeys(cfg.layers))
    for name in chosen:
        if parametrize.is_parametrized(modules[name]) or any(True for _ in modules[name].children()):
            raise ConfigError(f"layer {name!r} is already pruned or quantized; factorize before those steps")
    return [(name, modules[name]) for name in chosen]


def replace_layer(model: nn.Module, name: str, replacement: nn.Module) -> None:
    """Put ``replacement`` where the submodule ``name`` was."""
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attribute, replacement)


def layer_to_replay(model: nn.Module, edit: dict[str, Any], layer_type: type[nn.Module]) -> nn.Module:
    """The ``layer_type`` module an edit names; ValueError (not AttributeError) when the file is wrong."""
    try:
        layer = model.get_submodule(str(edit["layer"]))
    except AttributeError:
        raise ValueError(f"the model has no layer {edit['layer']!r}") from None
    if not isinstance(layer, layer_type):
        raise ValueError(f"layer {edit['layer']!r} is {type(layer).__name__}, not {layer_type.__name__}")
    return layer


def check_rank(rank: int, limit: int, name: str, what: str) -> int:
    """``rank`` if it is at most ``limit``, else a ConfigError naming the layer and its limit."""
    if rank > limit:
        raise ConfigError(f"rank {rank} is larger than layer {name!r} allows ({what}: at most {limit}); "
                          "lower it or choose layers with `layers=[...]`")
    return rank


Plan = Callable[[str, nn.Module], "tuple[nn.Module, dict[str, Any]] | None"]
"""``plan(name, layer)`` -> (replacement, edit fields) or None to keep the layer (no fewer weights)."""


def factorize_layers(model: nn.Module, cfg: FactorizeConfig, ctx: Context, layers: list[tuple[str, nn.Module]],
                     plan: Plan) -> nn.Module:
    """Replace each planned layer, record its structural edit, then fine-tune once.

    Raises:
        ConfigError: no layer would shrink at the ranks asked for (the step would change nothing).
    """
    changed = False
    refused: list[str] = []
    shape = ctx.dataset.input_shape if ctx.dataset is not None else None
    checked = shape is not None and _forward_fails(model, shape) is None  # a model that runs must keep running
    for name, layer in layers:
        planned = plan(name, layer)
        if planned is not None:
            replacement, edit = planned
            replace_layer(model, name, replacement)
            failure = _forward_fails(model, shape) if checked else None
            if failure:  # the model's own code uses the layer as a layer (e.g. reads its .weight): keep it
                replace_layer(model, name, layer)
                refused.append(f"{name} ({failure})")
                continue
            record_edit(model, {**edit, "layer": name})
            changed = True
    if not changed and refused:
        raise ConfigError(f"no layer can be factorized: the model stops working when they are replaced "
                          f"({'; '.join(refused)[:300]})")
    if refused and not ctx.quiet:
        warnings.warn(f"kept {len(refused)} layer(s) whole because the model stops working when they are "
                      f"factorized: {'; '.join(refused)[:400]}", stacklevel=3)
    if not changed:
        rule = next((f"{field}={getattr(cfg, field)}" for field in cfg.RANK_RULES if getattr(cfg, field) is not None),
                    "")
        raise ConfigError(f"no layer would shrink at {rule}: the factors would hold more than "
                          f"{1 - MIN_SAVING:.0%} of the weights of the layers ({', '.join(n for n, _ in layers)}); "
                          "ask for lower ranks")
    finetune(model, cfg, ctx)
    return model


def _forward_fails(model: nn.Module, input_shape: tuple[int, ...]) -> str | None:
    """The error line a zero sample ends in through ``model``, or None when it runs."""
    _, error = zero_sample_forward(model, input_shape)
    return None if error is None else error_line(error)


def finetune(model: nn.Module, cfg: FactorizeConfig, ctx: Context) -> None:
    """Fine-tune all weights for ``cfg.finetune_epochs`` epochs (none: the model is left as factorized)."""
    finetune_weights(model, ctx, cfg.finetune_epochs, cfg.lr)
