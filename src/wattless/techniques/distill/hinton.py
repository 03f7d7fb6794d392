"""Knowledge distillation with soft targets (Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a
Neural Network", arXiv:1503.02531): a small student learns the teacher's softened class probabilities.

Classification loss per batch::

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y)

(``T^2`` keeps the soft term's gradients on the scale of the hard one as ``T`` changes). Regression:
``alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, y)``, in squared target units.

The teacher's outputs on the training split are computed once, in eval mode, before training and looked up
by row index in every batch (:func:`wattless.train.fit`'s ``loss`` hook), so the teacher never runs per epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import Dataset
from ...train import BatchLoss, TrainConfig, fit, predict
from .._registry import Applied, Context, register_technique
from .student import DistillConfig, build_student, narrowable, student_architecture


class HintonConfig(DistillConfig):
    """Soft-target distillation: the shared student, training and soft-target fields, nothing more."""


def teacher_outputs(teacher: nn.Module, data: Dataset) -> torch.Tensor:
    """The teacher's outputs (logits or predictions) on every training row, in eval mode, computed once."""
    return torch.as_tensor(predict(teacher, data.X_train))


def distillation_loss(targets: torch.Tensor, data: Dataset, temperature: float, alpha: float) -> BatchLoss:
    """``loss(outputs, idx)`` mixing the cached teacher ``targets`` and the labels of training rows ``idx``."""
    if data.task == "classification":
        labels = torch.as_tensor(data.y_train, dtype=torch.long)

        def loss(outputs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            soft = F.kl_div(F.log_softmax(outputs / temperature, dim=1),
                            F.log_softmax(targets[idx] / temperature, dim=1),
                            reduction="batchmean", log_target=True)
            return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(outputs, labels[idx])
    else:
        values = torch.as_tensor(data.y_train, dtype=torch.float32)

        def loss(outputs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            pred = outputs.reshape(-1)
            return alpha * F.mse_loss(pred, targets[idx].reshape(-1)) + (1 - alpha) * F.mse_loss(pred, values[idx])
    return loss


def train_on_soft_targets(student: nn.Module, teacher: nn.Module, cfg: DistillConfig, ctx: Context) -> dict:
    """Train ``student`` in place on the teacher's cached outputs and the labels; returns :func:`fit`'s summary."""
    targets = teacher_outputs(teacher, ctx.dataset)
    train_cfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=ctx.seed)
    return fit(student, ctx.dataset, train_cfg,
               loss=distillation_loss(targets, ctx.dataset, cfg.temperature, cfg.alpha))


@register_technique("distill.hinton", HintonConfig, applies_to=narrowable,
                    claims=("params", "macs", "size_bytes"))
def distill_hinton(model: nn.Module, cfg: HintonConfig, ctx: Context) -> Applied:
    """Train a smaller student on the teacher's softened outputs and the labels (Hinton et al., 2015)."""
    student = build_student(model, cfg, ctx)
    train_on_soft_targets(student, model, cfg, ctx)
    return Applied(student, student_architecture(cfg, ctx))
