"""The training loop: it learns, it is deterministic, early stopping keeps the best weights."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import wattless
from wattless.train import TrainConfig, evaluate, fit, metrics_from_outputs


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.module.parameters()])


def test_training_learns_digits(digits, trained_mlp):
    assert evaluate(trained_mlp.module, digits.X_test, digits.y_test, "classification")["accuracy"] > 0.85


def test_same_seed_same_weights_other_seed_differs(digits):
    a = wattless.train("mlp", digits, model_kwargs={"hidden": [16]}, epochs=1, seed=3)
    b = wattless.train("mlp", digits, model_kwargs={"hidden": [16]}, epochs=1, seed=3)
    c = wattless.train("mlp", digits, model_kwargs={"hidden": [16]}, epochs=1, seed=4)
    assert torch.equal(weights(a), weights(b))
    assert not torch.equal(weights(a), weights(c))


def test_early_stopping_stops_and_restores_best(digits):
    model = wattless.train("mlp", digits, model_kwargs={"hidden": [16]}, epochs=1, seed=0).module
    # A vanishing learning rate cannot improve the validation accuracy, so patience ends training
    # after two epochs and the starting weights (the best seen) are kept.
    before = evaluate(model, digits.X_val, digits.y_val, "classification")
    summary = fit(model, digits, TrainConfig(epochs=20, lr=1e-12, patience=2, schedule="none"))
    assert summary["epochs_run"] == 2
    assert summary["best_epoch"] == 0
    assert summary["val"]["accuracy"] == pytest.approx(before["accuracy"])


def test_regression_reports_errors_in_target_units():
    data = wattless.load_dataset("diabetes")
    model = wattless.train("mlp", data, epochs=30, seed=0, lr=3e-3)
    metrics = evaluate(model.module, data.X_test, data.y_test, "regression")
    assert set(metrics) == {"rmse", "mae", "r2", "loss"}
    assert metrics["r2"] > 0.2  # better than predicting the mean
    assert 30 < metrics["rmse"] < 80  # diabetes targets span ~25..346


def test_sgd_and_step_schedule_train(digits):
    model = wattless.train("mlp", digits, model_kwargs={"hidden": [32]}, epochs=5, optimizer="sgd",
                           lr=0.1, schedule="step")
    assert model.meta["train"]["val"]["accuracy"] > 0.8


def test_metrics_from_outputs_by_hand():
    outputs = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]], dtype=np.float32)
    assert metrics_from_outputs(outputs, np.array([0, 1, 1]), "classification")["accuracy"] == pytest.approx(2 / 3)
    reg = metrics_from_outputs(np.array([[1.0], [3.0]], np.float32), np.array([2.0, 3.0]), "regression")
    assert reg["rmse"] == pytest.approx(np.sqrt(0.5))
    assert reg["mae"] == pytest.approx(0.5)


def test_config_rejects_unknown_and_out_of_range_fields():
    with pytest.raises(ValidationError):
        TrainConfig(epoch=3)
    with pytest.raises(ValidationError):
        TrainConfig(lr=-1)
    with pytest.raises(ValidationError):
        TrainConfig(optimizer="lion")


def test_loss_hook_replaces_the_criterion_and_gets_training_rows(digits):
    def fresh():
        return wattless.train("mlp", digits, model_kwargs={"hidden": [16]}, epochs=0, seed=1).module

    cfg = TrainConfig(epochs=2, lr=1e-2, seed=0)
    reference = fresh()
    fit(reference, digits, cfg)
    y = torch.as_tensor(digits.y_train, dtype=torch.long)
    seen = []

    def same_loss_by_index(outputs, idx):
        seen.append(idx)
        return torch.nn.functional.cross_entropy(outputs, y[idx])

    hooked = fresh()
    fit(hooked, digits, cfg, loss=same_loss_by_index)
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(len(y)).repeat_interleave(2))  # each row per epoch
    for a, b in zip(reference.parameters(), hooked.parameters(), strict=True):
        assert torch.equal(a, b)  # the indices are the batch's rows, so the same loss gives the same weights

    flat = fresh()
    start = [p.detach().clone() for p in flat.parameters()]
    fit(flat, digits, cfg, loss=lambda outputs, idx: 0.0 * outputs.sum(), best_from_epoch=2)  # keeps the last epoch
    assert all(torch.equal(a, b) for a, b in zip(start, flat.parameters(), strict=True))  # zero gradients: no step
