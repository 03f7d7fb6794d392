"""The one training and evaluation loop used by everything: fitting, fine-tuning, QAT and KD.

Cross-entropy (optionally label-smoothed) for classification, mean squared error for regression; Adam or SGD;
an optional linear warm-up and learning-rate schedule; optional image augmentation of the training batches
(:mod:`wattless.augment`); early stopping on the validation metric, restoring the best weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer
from sklearn import metrics as skm
from torch import nn

from .augment import AUGMENTATIONS, BatchAugmenter
from .data import Dataset
from .data._csv import MAX_REGRESSION_TARGET
from .errors import ConfigError, DataError

Augmentation = Literal["crop", "flip", "cutout", "randaugment"]
LATER_FIELDS = ("warmup_epochs", "label_smoothing", "augment", "crop_padding", "cutout")
"""Fields added after the first release: written by ``model_dump`` only when they differ from their defaults."""

MAX_LEARNING_RATE = 10.0
"""The largest learning rate accepted anywhere: beyond it Adam's and SGD's float32 steps overflow (``--lr 1e300``)
long before anything is learned."""
LearningRateValue = Annotated[float, Field(gt=0, le=MAX_LEARNING_RATE, allow_inf_nan=False)]
"""A learning rate field (training and every technique's fine-tuning): finite, > 0, <= MAX_LEARNING_RATE."""


class TrainConfig(BaseModel):
    """How to train. Every field has a sensible default; ``extra="forbid"`` turns typos into errors.

    ``model_dump`` leaves out the fields of :data:`LATER_FIELDS` while they hold their defaults, so the model
    files and sweep keys of configurations that do not use them are byte-identical to those written before
    the fields existed; loading such a dump gives the same config.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(10, ge=0, le=10_000)
    batch_size: int = Field(128, ge=1)
    lr: LearningRateValue = Field(1e-3, description="learning rate (onecycle: its peak)")
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    schedule: Literal["none", "cosine", "step", "onecycle"] = Field(
        "cosine", description="cosine and step change the rate once per epoch, onecycle once per batch")
    patience: int | None = Field(None, ge=1, description="epochs without validation gain before stopping")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy's legacy generator takes 0 to 2**32 - 1")
    warmup_epochs: int = Field(0, ge=0, le=10_000, description="epochs of linear learning-rate warm-up from "
                               "lr/steps to lr, one step per batch, before the schedule starts")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="classification cross-entropy label smoothing")
    augment: tuple[Augmentation, ...] = Field((), description="image augmentations of the training batches, "
                                              "applied in the order crop, flip, randaugment, cutout")
    crop_padding: int = Field(4, ge=1, le=256, description="zero padding of augmentation 'crop', pixels")
    cutout: int = Field(16, ge=1, le=4096, description="side of the square augmentation 'cutout' zeroes, pixels")

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup_fits(cls, value: int, info: ValidationInfo) -> int:
        if value and info.data.get("schedule") == "onecycle":
            raise ValueError("the onecycle schedule warms up by itself (its first 30% of steps); "
                             "drop the warm-up or choose cosine, step or none")
        epochs = info.data.get("epochs")
        if value and epochs is not None and value >= epochs:
            raise ValueError(f"warm-up of {value} epochs leaves no training after it; use fewer than epochs={epochs}")
        return value

    @field_validator("augment", mode="before")
    @classmethod
    def _augment_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # "crop,flip" from a command line or YAML
            value = [name.strip() for name in value.split(",") if name.strip()]
        if isinstance(value, list | tuple):  # one of each, in the order they are applied
            value = tuple(name for name in AUGMENTATIONS if name in value) + tuple(
                name for name in dict.fromkeys(value) if name not in AUGMENTATIONS)
        return value

    @field_validator("crop_padding", "cutout")
    @classmethod
    def _size_needs_its_augmentation(cls, value: int, info: ValidationInfo) -> int:
        name = "crop" if info.field_name == "crop_padding" else "cutout"
        chosen = info.data.get("augment")
        if chosen is not None and name not in chosen and value != cls.model_fields[info.field_name].default:
            raise ValueError(f"{info.field_name}={value} is set but augmentation {name!r} is not chosen; "
                             f"add it to augment (--augment {name})")
        return value

    @model_serializer(mode="wrap")
    def _omit_unused_later_fields(self, handler) -> dict[str, Any]:
        dumped = handler(self)
        for name in LATER_FIELDS:
            if name in dumped and getattr(self, name) == type(self).model_fields[name].default:
                del dumped[name]
        return dumped


def seed_everything(seed: int) -> None:
    """Seed torch and numpy so the same seed gives the same weights."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def loss_function(task: str, label_smoothing: float = 0.0) -> nn.Module:
    """Cross-entropy (with ``label_smoothing``) for classification, MSE for regression."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing) if task == "classification" else nn.MSELoss()


def _targets(y: np.ndarray, task: str) -> torch.Tensor:
    return torch.as_tensor(y, dtype=torch.long if task == "classification" else torch.float32)


def _as_loss_input(outputs: torch.Tensor, task: str) -> torch.Tensor:
    return outputs if task == "classification" else outputs.reshape(-1)


def predict(model: nn.Module, X: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """Model outputs (logits or predictions) for ``X`` as a float32 array, in eval mode."""
    was_training = model.training
    model.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            outputs.append(model(torch.as_tensor(X[start:start + batch_size])).float().numpy())
    model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def metrics_from_outputs(outputs: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """Accuracy (fraction) and loss for classification; RMSE, MAE, R2 (target units) for regression."""
    if task == "classification":
        logits = torch.as_tensor(outputs)
        loss = float(nn.functional.cross_entropy(logits, torch.as_tensor(y, dtype=torch.long)))
        return {"accuracy": float(np.mean(outputs.argmax(axis=1) == y)), "loss": loss}
    y, pred = np.asarray(y, np.float64), outputs.reshape(-1).astype(np.float64)  # float32 squares overflow
    mse = float(skm.mean_squared_error(y, pred))
    return {"rmse": math.sqrt(mse), "mae": float(skm.mean_absolute_error(y, pred)),
            "r2": float(skm.r2_score(y, pred)), "loss": mse}


def quality(outputs: np.ndarray, data: Dataset, split: str) -> dict[str, float]:
    """Accuracy (fraction) or RMSE/MAE/R2 of ``outputs`` on ``split`` of ``data``, without the loss."""
    metrics = metrics_from_outputs(outputs, data.split(split)[1], data.task)
    metrics.pop("loss", None)
    return metrics


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """Metrics of ``model`` on one split (see :func:`metrics_from_outputs`)."""
    return metrics_from_outputs(predict(model, X), y, task)


def score(metrics: dict[str, float]) -> float:
    """One number where higher is better: accuracy, or minus RMSE."""
    return metrics["accuracy"] if "accuracy" in metrics else -metrics["rmse"]


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class LearningRate:
    """Sets the optimizer's learning rate: a linear warm-up per step, then the schedule.

    cosine and step change the rate once per epoch over the epochs after the warm-up, as
    ``CosineAnnealingLR`` and ``StepLR`` (a tenth every third of them); onecycle (``OneCycleLR``, peak
    ``cfg.lr``) changes it after every batch over the whole run.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
        self.optimizer, self.warmup_epochs = optimizer, cfg.warmup_epochs
        self.warmup_steps = cfg.warmup_epochs * steps
        epochs = cfg.epochs - cfg.warmup_epochs
        self.per_epoch: torch.optim.lr_scheduler.LRScheduler | None = None
        self.per_step: torch.optim.lr_scheduler.LRScheduler | None = None
        if cfg.schedule == "cosine":
            self.per_epoch = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
        elif cfg.schedule == "step":
            self.per_epoch = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.1)
        elif cfg.schedule == "onecycle":
            self.per_step = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr,
                                                                total_steps=max(cfg.epochs * steps, 1))
        self.base = [group["lr"] for group in optimizer.param_groups]
        if self.warmup_steps:
            self._scale(1 / self.warmup_steps)

    def _scale(self, factor: float) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base, strict=True):
            group["lr"] = base * factor

    def after_step(self, step: int) -> None:
        """Call after optimizer step ``step`` (from 1): step ``k`` of the warm-up ran at ``lr * k / warm-up steps``."""
        if step < self.warmup_steps:
            self._scale((step + 1) / self.warmup_steps)
        elif step == self.warmup_steps and self.warmup_steps:
            self._scale(1.0)  # the schedule starts from the full rate
        elif self.per_step is not None:
            self.per_step.step()

    def after_epoch(self, epoch: int) -> None:
        """Call after epoch ``epoch`` (from 1)."""
        if self.per_epoch is not None and epoch > self.warmup_epochs:
            self.per_epoch.step()


def check_config(cfg: TrainConfig, data: Dataset, *, custom_loss: bool = False) -> BatchAugmenter | None:
    """Refuse options that do not fit ``data`` (or a custom loss) before any work; the batch augmenter, if any."""
    check_targets(data)
    if cfg.label_smoothing and data.task != "classification":
        raise ConfigError(f"label smoothing {cfg.label_smoothing} applies to classification; {data.name!r} is a "
                          "regression task; drop it")
    if custom_loss and (cfg.label_smoothing or cfg.augment):
        raise ConfigError("label smoothing and augmentation apply to the built-in loss on the raw training rows; "
                          "a custom loss (e.g. distillation) takes neither")
    if not cfg.augment:
        return None
    return BatchAugmenter(cfg.augment, input_shape=data.input_shape, seed=cfg.seed, crop_padding=cfg.crop_padding,
                          cutout_size=cfg.cutout, preprocessing=data.preprocessing, dataset=data.name)


def check_targets(data: Dataset) -> None:
    """Refuse regression targets that are not finite or beyond ``MAX_REGRESSION_TARGET`` (float32 overflow)."""
    if data.task != "regression":
        return
    for split in ("train", "val", "test"):
        y = np.asarray(data.split(split)[1], dtype=np.float64)
        if not np.isfinite(y).all():
            raise DataError(f"{data.name}: the {split} split holds a regression target that is NaN or infinite; "
                            "drop or fix those rows")
        if y.size and np.abs(y).max() > MAX_REGRESSION_TARGET:
            raise DataError(f"{data.name}: the {split} split holds regression target {y[np.abs(y).argmax()]:.3g}, "
                            f"beyond +-{MAX_REGRESSION_TARGET:.0e} where float32 training overflows; rescale the "
                            "target (e.g. other units or its logarithm)")


EpochCallback = Callable[[int, dict[str, Any]], None]
StepCallback = Callable[[int], None]
BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(outputs, idx) -> scalar``: a training loss given a batch's outputs and its training-set row indices."""


def steps_per_epoch(data: Dataset, cfg: TrainConfig) -> int:
    """Optimizer steps in one epoch of :func:`fit` (the last batch may be smaller)."""
    return math.ceil(len(data.X_train) / cfg.batch_size)


def task_loss(data: Dataset, label_smoothing: float = 0.0) -> BatchLoss:
    """``loss(outputs, idx)``: the task's own loss (cross-entropy or MSE) on training rows ``idx``, the one
    :func:`fit` trains with unless given another; for callers that add a term to it."""
    criterion = loss_function(data.task, label_smoothing)
    targets = _targets(data.y_train, data.task)

    def loss(outputs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return criterion(_as_loss_input(outputs, data.task), targets[idx])
    return loss


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig | None = None, *,
        on_epoch: EpochCallback | None = None, on_step: StepCallback | None = None,
        best_from_epoch: int = 0, loss: BatchLoss | None = None, validate: bool = True) -> dict[str, Any]:
    """Train ``model`` in place on ``data`` and return the history.

    The weights of the epoch with the best validation metric are restored at the end, so
    early stopping never leaves a worse model than one already seen.

    Args:
        on_epoch: called with ``(epoch, history row)`` after every epoch.
        on_step: called with the optimizer step count (from 1, over the whole run) after every optimizer
            step, e.g. to update pruning masks while training.
        best_from_epoch: only the weights after this epoch or a later one may be restored as the best
            (0: the starting weights too). Callers that change the model's function while training, as
            gradual pruning does, pass the epoch their changes end, so the restored model is a final one.
        loss: ``loss(outputs, idx)`` in place of the task's loss (distillation, hints).
        validate: False for a model whose outputs are not the task's (a hint regressor): no validation
            metrics, and the last weights are kept.

    Returns:
        ``{"epochs_run", "best_epoch", "val": best validation metrics, "history": [per epoch],
        "seconds": wall time}``.
    """
    cfg = cfg or TrainConfig()
    augmenter = check_config(cfg, data, custom_loss=loss is not None)
    seed_everything(cfg.seed)
    started = time.perf_counter()
    X = torch.as_tensor(data.X_train)
    loss = loss or task_loss(data, cfg.label_smoothing)
    optimizer = _optimizer(model, cfg)
    rate = LearningRate(optimizer, cfg, steps_per_epoch(data, cfg))
    order = torch.Generator().manual_seed(cfg.seed)
    best = None
    if validate and best_from_epoch == 0:
        best = {"score": score(evaluate(model, data.X_val, data.y_val, data.task)), "epoch": 0,
                "state": copy.deepcopy(model.state_dict())}
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for idx in torch.randperm(len(X), generator=order).split(cfg.batch_size):
            optimizer.zero_grad(set_to_none=True)
            outputs = model(X[idx] if augmenter is None else augmenter(X[idx]))
            batch_loss = loss(outputs, idx)
            batch_loss.backward()
            optimizer.step()
            step += 1
            rate.after_step(step)
            if on_step is not None:
                on_step(step)
            total, seen = total + batch_loss.item() * len(idx), seen + len(idx)
        rate.after_epoch(epoch)
        val = evaluate(model, data.X_val, data.y_val, data.task) if validate else {}
        history.append({"epoch": epoch, "train_loss": total / max(seen, 1), **{f"val_{k}": v for k, v in val.items()}})
        if validate and epoch >= best_from_epoch and (best is None or score(val) > best["score"]):
            best = {"score": score(val), "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
        if cfg.patience is not None and best is not None and epoch - best["epoch"] >= cfg.patience:
            break
    if best is not None:  # None only when training ended before best_from_epoch: keep the last weights
        model.load_state_dict(best["state"])
    model.eval()
    return {"epochs_run": len(history), "best_epoch": best["epoch"] if best is not None else len(history),
            "val": evaluate(model, data.X_val, data.y_val, data.task) if validate else {}, "history": history,
            "seconds": time.perf_counter() - started}
