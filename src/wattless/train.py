"""The one training and evaluation loop used by everything: fitting, fine-tuning and (later) QAT and KD.

Cross-entropy for classification, mean squared error for regression; Adam or SGD; an optional
learning-rate schedule; early stopping on the validation metric, restoring the best weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from sklearn import metrics as skm
from torch import nn

from .data import Dataset


class TrainConfig(BaseModel):
    """How to train. Every field has a sensible default; ``extra="forbid"`` turns typos into errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(10, ge=0, le=10_000)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0, description="learning rate")
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["none", "cosine", "step"] = "cosine"
    patience: int | None = Field(None, ge=1, description="epochs without validation gain before stopping")
    seed: int = 0


def seed_everything(seed: int) -> None:
    """Seed torch and numpy so the same seed gives the same weights."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def loss_function(task: str) -> nn.Module:
    """Cross-entropy for classification, MSE for regression."""
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


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
    pred = outputs.reshape(-1)
    mse = float(skm.mean_squared_error(y, pred))
    return {"rmse": math.sqrt(mse), "mae": float(skm.mean_absolute_error(y, pred)),
            "r2": float(skm.r2_score(y, pred)), "loss": mse}


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


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(cfg.epochs // 3, 1), gamma=0.1)
    return None


EpochCallback = Callable[[int, dict[str, Any]], None]
StepCallback = Callable[[int], None]
BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(outputs, idx) -> scalar``: a training loss given a batch's outputs and its training-set row indices."""


def steps_per_epoch(data: Dataset, cfg: TrainConfig) -> int:
    """Optimizer steps in one epoch of :func:`fit` (the last batch may be smaller)."""
    return math.ceil(len(data.X_train) / cfg.batch_size)


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig | None = None, *,
        on_epoch: EpochCallback | None = None, on_step: StepCallback | None = None,
        best_from_epoch: int = 0, loss: BatchLoss | None = None) -> dict[str, Any]:
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

    Returns:
        ``{"epochs_run", "best_epoch", "val": best validation metrics, "history": [per epoch],
        "seconds": wall time}``.
    """
    cfg = cfg or TrainConfig()
    seed_everything(cfg.seed)
    started = time.perf_counter()
    X = torch.as_tensor(data.X_train)
    y = _targets(data.y_train, data.task)
    criterion = loss_function(data.task)
    optimizer = _optimizer(model, cfg)
    scheduler = _scheduler(optimizer, cfg)
    order = torch.Generator().manual_seed(cfg.seed)
    best = None
    if best_from_epoch == 0:
        best = {"score": score(evaluate(model, data.X_val, data.y_val, data.task)), "epoch": 0,
                "state": copy.deepcopy(model.state_dict())}
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for idx in torch.randperm(len(X), generator=order).split(cfg.batch_size):
            optimizer.zero_grad(set_to_none=True)
            outputs = model(X[idx])
            batch_loss = (loss(outputs, idx) if loss is not None
                          else criterion(_as_loss_input(outputs, data.task), y[idx]))
            batch_loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step)
            total, seen = total + batch_loss.item() * len(idx), seen + len(idx)
        if scheduler is not None:
            scheduler.step()
        val = evaluate(model, data.X_val, data.y_val, data.task)
        history.append({"epoch": epoch, "train_loss": total / max(seen, 1), **{f"val_{k}": v for k, v in val.items()}})
        if epoch >= best_from_epoch and (best is None or score(val) > best["score"]):
            best = {"score": score(val), "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
        if cfg.patience is not None and best is not None and epoch - best["epoch"] >= cfg.patience:
            break
    if best is not None:  # None only when training ended before best_from_epoch: keep the last weights
        model.load_state_dict(best["state"])
    model.eval()
    return {"epochs_run": len(history), "best_epoch": best["epoch"] if best is not None else len(history),
            "val": evaluate(model, data.X_val, data.y_val, data.task), "history": history,
            "seconds": time.perf_counter() - started}
