"""The training loop: it learns, it is deterministic, early stopping keeps the best weights."""

import copy
import hashlib
import importlib

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import wattless
from wattless.errors import ConfigError
from wattless.train import TrainConfig, evaluate, fit, loss_function, metrics_from_outputs, steps_per_epoch

train_module = importlib.import_module("wattless.train")  # the package's `train` attribute is the function


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


# --- augmentation and schedules (issue 9) ---------------------------------------------------------------------------

DEFAULT_CONFIG_DUMP = {"epochs": 10, "batch_size": 128, "lr": 0.001, "optimizer": "adam", "momentum": 0.9,
                       "weight_decay": 0.0, "schedule": "cosine", "patience": None, "seed": 0}


def state_sha256(module):
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums split over threads can round differently
    yield
    torch.set_num_threads(threads)


def test_default_config_records_the_same_config_as_before(digits):
    # New fields at their defaults are left out, so model files and sweep trial keys of default runs keep their bytes.
    model = wattless.train("mlp", digits, seed=0, epochs=1)
    assert model.meta["train"]["config"] == {**DEFAULT_CONFIG_DUMP, "epochs": 1}


def test_new_fields_are_recorded_when_used_and_round_trip():
    cfg = TrainConfig(augment="flip, crop,flip", crop_padding=2, warmup_epochs=1, label_smoothing=0.1)
    assert cfg.augment == ("crop", "flip")  # one of each, in the order they are applied
    dumped = cfg.model_dump(mode="json")
    assert dumped["augment"] == ["crop", "flip"] and dumped["crop_padding"] == 2
    assert dumped["warmup_epochs"] == 1 and dumped["label_smoothing"] == 0.1
    assert "cutout" not in dumped  # still at its default
    assert TrainConfig(**dumped) == cfg
    assert TrainConfig(**TrainConfig().model_dump()) == TrainConfig()


@pytest.mark.parametrize(("fields", "message"), [
    ({"augment": ["crop", "mixup"]}, "Input should be"),
    ({"cutout": 8}, "augmentation 'cutout' is not chosen"),
    ({"crop_padding": 2, "augment": ["flip"]}, "augmentation 'crop' is not chosen"),
    ({"epochs": 3, "warmup_epochs": 3}, "fewer than epochs=3"),
    ({"schedule": "onecycle", "warmup_epochs": 1}, "onecycle schedule warms up by itself"),
    ({"label_smoothing": 1.0}, "less than 1"),
    ({"schedule": "cyclic"}, "Input should be"),
])
def test_bad_training_options_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        TrainConfig(**fields)


def test_options_that_do_not_fit_the_data_or_the_loss_are_refused(digits, digit_images):
    model = wattless.train("mlp", digits, model_kwargs={"hidden": [8]}, epochs=0).module
    with pytest.raises(ConfigError, match=r"needs image inputs of shape \(channels, height, width\).*\(64,\)"):
        fit(model, digits, TrainConfig(epochs=1, augment=["flip"]))
    with pytest.raises(ConfigError, match="a custom loss"):
        fit(model, digit_images, TrainConfig(epochs=1, augment=["flip"]), loss=lambda out, idx: out.sum())
    with pytest.raises(ConfigError, match="regression task"):
        fit(model, wattless.load_dataset("diabetes"), TrainConfig(epochs=1, label_smoothing=0.1))


def test_augmentation_touches_training_batches_only(digit_images):
    images = digit_images
    model = wattless.train("mlp", images, model_kwargs={"hidden": [16]}, epochs=0).module
    seen = {True: [], False: []}
    model.register_forward_pre_hook(lambda module, args: seen[module.training].append(args[0].detach().clone()))
    summary = fit(model, images, TrainConfig(epochs=2, lr=1e-2, augment=["crop", "flip", "cutout"], crop_padding=1,
                                             cutout=3))
    raw_train = {row.numpy().tobytes() for row in torch.as_tensor(images.X_train)}
    trained_on = torch.cat(seen[True])
    assert len(trained_on) == 2 * len(images.X_train)
    unchanged = sum(row.numpy().tobytes() in raw_train for row in trained_on)
    assert unchanged < 0.05 * len(trained_on)  # Cutout alone changes every image
    evaluated = seen[False]
    assert all(torch.equal(batch, torch.as_tensor(images.X_val)) for batch in evaluated)  # validation: raw data
    assert summary["val"] == evaluate(model, images.X_val, images.y_val, "classification")
    assert summary["val"]["accuracy"] > 0.5  # still learns


def test_augmented_training_is_seeded(digit_images):
    images = digit_images

    def train(seed):
        return wattless.train("mlp", images, model_kwargs={"hidden": [16]}, epochs=1, seed=seed,
                              augment=["crop", "flip", "cutout"], cutout=4)

    assert torch.equal(weights(train(3)), weights(train(3)))
    assert not torch.equal(weights(train(3)), weights(train(4)))
    plain = wattless.train("mlp", images, model_kwargs={"hidden": [16]}, epochs=1, seed=3)
    assert not torch.equal(weights(train(3)), weights(plain))


def lr_trajectory(monkeypatch, data, cfg):
    """The learning rate each optimizer step of ``fit`` ran at."""
    rates = []
    make = train_module._optimizer

    def recording(model, config):
        optimizer = make(model, config)
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: rates.append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr(train_module, "_optimizer", recording)
    model = wattless.train("mlp", data, model_kwargs={"hidden": [8]}, epochs=0).module
    fit(model, data, cfg)
    assert len(rates) == cfg.epochs * steps_per_epoch(data, cfg)
    return np.array(rates)


def per_epoch(rates, steps):
    epochs = rates.reshape(-1, steps)
    assert (epochs == epochs[:, :1]).all()  # constant within each epoch
    return epochs[:, 0]


def test_none_cosine_and_step_schedules_change_the_rate_per_epoch(monkeypatch, digits):
    steps = steps_per_epoch(digits, TrainConfig(batch_size=256))
    rates = {s: lr_trajectory(monkeypatch, digits, TrainConfig(epochs=6, batch_size=256, lr=0.1, schedule=s))
             for s in ("none", "cosine", "step")}
    assert np.allclose(per_epoch(rates["none"], steps), 0.1)
    assert np.allclose(per_epoch(rates["cosine"], steps), 0.1 * (1 + np.cos(np.pi * np.arange(6) / 6)) / 2)
    assert np.allclose(per_epoch(rates["step"], steps), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_onecycle_changes_the_rate_every_step_and_peaks_at_lr(monkeypatch, digits):
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.05, schedule="onecycle")
    rates = lr_trajectory(monkeypatch, digits, cfg)
    total = len(rates)
    peak = int(np.argmax(rates))
    assert rates[peak] == pytest.approx(0.05)
    assert abs(peak - 0.3 * total) <= 1  # OneCycleLR's default pct_start
    assert rates[0] == pytest.approx(0.05 / 25)  # div_factor
    assert rates[-1] < 0.05 / 25 / 100  # final_div_factor 1e4, down from the initial rate
    assert (np.diff(rates[:peak]) > 0).all() and (np.diff(rates[peak:]) < 0).all()  # a new rate every step


def test_warmup_rises_linearly_per_step_then_the_schedule_runs(monkeypatch, digits):
    cfg = TrainConfig(epochs=5, batch_size=128, lr=0.1, warmup_epochs=2, schedule="cosine")
    steps = steps_per_epoch(digits, cfg)
    rates = lr_trajectory(monkeypatch, digits, cfg)
    warm = rates[:2 * steps]
    assert np.allclose(warm, 0.1 * np.arange(1, 2 * steps + 1) / (2 * steps))  # 0.1 / warm-up steps up to 0.1
    assert warm[0] < 0.01  # near 0
    assert np.allclose(per_epoch(rates[2 * steps:], steps), 0.1 * (1 + np.cos(np.pi * np.arange(3) / 3)) / 2)
    none = lr_trajectory(monkeypatch, digits, cfg.model_copy(update={"schedule": "none"}))
    assert np.allclose(none[:2 * steps], warm) and np.allclose(none[2 * steps:], 0.1)


def test_label_smoothing_gives_torchs_smoothed_cross_entropy(digits, trained_mlp):
    model = copy.deepcopy(trained_mlp.module)  # confident, so smoothing the targets costs much
    X, y = torch.as_tensor(digits.X_train), torch.as_tensor(digits.y_train)
    with torch.no_grad():
        logits = model(X)
    smoothed = float(torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.2))
    plain = float(torch.nn.functional.cross_entropy(logits, y))
    assert float(loss_function("classification", 0.2)(logits, y)) == pytest.approx(smoothed)
    # one batch holding every training row: the epoch's loss is that of the starting weights
    history = fit(model, digits, TrainConfig(epochs=1, batch_size=len(y), label_smoothing=0.2))["history"]
    assert history[0]["train_loss"] == pytest.approx(smoothed, rel=1e-5)
    assert abs(smoothed - plain) > 0.05
