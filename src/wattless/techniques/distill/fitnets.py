"""FitNets (Romero et al., ICLR 2015, "FitNets: Hints for Thin Deep Nets"): the student first learns to
reproduce an intermediate representation of the teacher (the *hint*), then is distilled on soft targets.

Stage 1 trains the student's layers up to its *guided* layer, plus a learned regressor (``nn.Linear`` for flat
features, a 1x1 ``nn.Conv2d`` for feature maps) that maps the guided output to the hint's width, to minimise
the mean squared error to the teacher's hint; a teacher map of another spatial size is adaptive-average-pooled
to the student's. The regressor is discarded afterwards. Stage 2 is :mod:`.hinton` soft-target training.

Default layers: the hidden layers of a model are its ``Linear`` and ``Conv`` layers in the order the forward
pass runs them, less the last one (the output layer). The hint is the output (before its nonlinearity) of the
teacher's middle hidden layer, the earlier of the two middle ones for an even count (LeNet-300-100: the
300-unit layer); the guided layer is the student's hidden layer at the same relative depth.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch import nn

from ...errors import ConfigError
from ...train import LearningRateValue, TrainConfig, fit, seed_everything
from .._registry import Applied, Context, register_technique
from .hinton import train_on_soft_targets
from .student import DistillConfig, build_student, narrowable, student_architecture

HINT_CACHE_BYTES = 256 * 2**20
"""Teacher hints for the whole training split are computed once when they take less than this (bytes),
else per batch."""
_PASS_BATCH = 1024


class FitNetsConfig(DistillConfig):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # layer names such as 1 in hint_layer=1

    hint_layer: str | None = Field(None, description="teacher layer whose output is the hint (default: middle)")
    guided_layer: str | None = Field(None, description="student layer guided by the hint (default: same depth)")
    hint_epochs: int = Field(5, ge=0, le=10_000, description="epochs of the hint stage")
    hint_lr: LearningRateValue = Field(1e-3, description="learning rate of the hint stage")


class _LayerReached(Exception):
    """Stops a forward pass once the wanted layer has run (nothing after it is needed)."""


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode, its previous mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def layer_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``model``'s submodule ``layer`` for input ``x``; the forward pass stops there."""
    captured: list = []

    def hook(module, inputs, output):
        captured.append(output)
        raise _LayerReached

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        model(x)
    except _LayerReached:
        pass
    finally:
        handle.remove()
    if not captured or not isinstance(captured[0], torch.Tensor):
        raise ConfigError(f"layer {layer!r} {'outputs no single tensor' if captured else 'never runs'}; "
                          "choose another hint_layer or guided_layer")
    return captured[0]


def hidden_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[str]:
    """Names of the Linear and Conv layers in the order the forward pass runs them, less the output layer."""
    order: list[str] = []
    handles = [module.register_forward_hook(lambda *_, name=name: order.append(name))
               for name, module in model.named_modules() if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))]
    try:
        with evaluating(model), torch.no_grad():
            model(torch.zeros(1, *input_shape, device=_device_of(model)))
    finally:
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(order))[:-1]


def pick_layers(teacher: nn.Module, student: nn.Module, cfg: FitNetsConfig, input_shape) -> tuple[str, str]:
    """The hint layer of the teacher and the guided layer of the student (see the module docstring)."""
    teacher_hidden, student_hidden = hidden_layers(teacher, input_shape), hidden_layers(student, input_shape)
    hint = _checked_layer(teacher, cfg.hint_layer, teacher_hidden, "hint_layer", "teacher")
    if cfg.guided_layer is not None or not student_hidden:  # the latter raises: no default to pick
        return hint, _checked_layer(student, cfg.guided_layer, student_hidden, "guided_layer", "student")
    depth = (teacher_hidden.index(hint) + 1) / len(teacher_hidden) if hint in teacher_hidden else 0.5
    return hint, student_hidden[max(math.ceil(depth * len(student_hidden)) - 1, 0)]


def _checked_layer(model: nn.Module, name: str | None, hidden: list[str], role: str, owner: str) -> str:
    """``name`` if ``model`` has such a layer, else the middle hidden layer; ConfigError if neither exists."""
    if name is None:
        if not hidden:
            raise ConfigError(f"the {owner} has no hidden Linear or Conv layer to pick a default {role} from; "
                              f"give {role}=NAME")
        return hidden[(len(hidden) - 1) // 2]
    if name not in dict(model.named_modules()):
        raise ConfigError(f"{role}={name!r} names no layer of the {owner}; its hidden layers: "
                          f"{', '.join(hidden) or 'none'}")
    return name


def make_regressor(guided: torch.Size, hint: torch.Size) -> tuple[nn.Module, nn.Module]:
    """``(regressor, pool)``: the regressor maps guided outputs to the hint's width; ``pool`` brings the
    teacher's hint to the student's spatial size."""
    if len(guided) == len(hint) == 4:
        pool = nn.Identity() if guided[2:] == hint[2:] else nn.AdaptiveAvgPool2d(tuple(guided[2:]))
        return nn.Conv2d(guided[1], hint[1], kernel_size=1), pool
    if len(guided) == len(hint) and len(guided) in (2, 3) and guided[1:-1] == hint[1:-1]:
        return nn.Linear(guided[-1], hint[-1]), nn.Identity()
    raise ConfigError(f"cannot regress the guided layer's outputs of shape {list(guided[1:])} onto the hint's "
                      f"{list(hint[1:])}: both must be flat features or both image maps; choose other layers")


def hint_source(teacher: nn.Module, layer: str, pool: nn.Module,
                X: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``hints(idx)``: the teacher's pooled hint for training rows ``idx``, cached when under HINT_CACHE_BYTES."""

    def compute(rows: torch.Tensor) -> torch.Tensor:
        with evaluating(teacher), torch.no_grad():
            return pool(layer_output(teacher, layer, rows))

    one = compute(X[:1])
    if len(X) * one[0].numel() * one.element_size() >= HINT_CACHE_BYTES:
        return lambda idx: compute(X[idx])
    cache = torch.cat([compute(X[start:start + _PASS_BATCH]) for start in range(0, len(X), _PASS_BATCH)])
    return lambda idx: cache[idx]


class GuidedToHint(nn.Module):
    """The student up to its guided layer, then the regressor: what the hint stage trains."""

    def __init__(self, student: nn.Module, guided: str, regressor: nn.Module):
        super().__init__()
        self.student, self.guided, self.regressor = student, guided, regressor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(layer_output(self.student, self.guided, x))


def hint_stage(student: nn.Module, teacher: nn.Module, cfg: FitNetsConfig, ctx: Context) -> tuple[float, float]:
    """Stage 1: train the student up to its guided layer (and a regressor) to predict the teacher's hint, with
    the one training loop (:func:`wattless.train.fit`, a hint loss, no validation metric, constant rate).

    Returns the hint MSE over the training split before and after, in the hint's squared units.
    """
    hint_name, guided_name = pick_layers(teacher, student, cfg, ctx.dataset.input_shape)
    X = torch.as_tensor(ctx.dataset.X_train)
    with evaluating(student), evaluating(teacher), torch.no_grad():
        guided_shape = layer_output(student, guided_name, X[:1]).shape
        hint_shape = layer_output(teacher, hint_name, X[:1]).shape
    seed_everything(ctx.seed)
    regressor, pool = make_regressor(guided_shape, hint_shape)
    hints = hint_source(teacher, hint_name, pool, X)
    guided = GuidedToHint(student, guided_name, regressor)

    def split_mse() -> float:
        with evaluating(guided), torch.no_grad():
            batches = torch.arange(len(X)).split(_PASS_BATCH)
            return sum(float(F.mse_loss(guided(X[idx]), hints(idx))) * len(idx) for idx in batches) / max(len(X), 1)

    before = split_mse()
    # the forward pass stops at the guided layer, so only the layers up to it (and the regressor) get gradients
    fit(guided, ctx.dataset, TrainConfig(epochs=cfg.hint_epochs, lr=cfg.hint_lr, batch_size=cfg.batch_size,
                                         schedule="none", seed=ctx.seed),
        loss=lambda outputs, idx: F.mse_loss(outputs, hints(idx)), validate=False)
    student.train()
    return before, split_mse()


@register_technique("distill.fitnets", FitNetsConfig, applies_to=narrowable,
                    claims=("params", "macs", "size_bytes"))
def distill_fitnets(model: nn.Module, cfg: FitNetsConfig, ctx: Context) -> Applied:
    """Guide a student's middle layer by the teacher's (hint stage), then distill soft targets (Romero et al.)."""
    student = build_student(model, cfg, ctx)
    hint_stage(student, model, cfg, ctx)
    train_on_soft_targets(student, model, cfg, ctx)
    return Applied(student, student_architecture(cfg, ctx))


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
