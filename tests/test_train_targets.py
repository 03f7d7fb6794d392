"""Regression targets training cannot handle (issue 17): refused with one DataError before any work."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from wattless.data import Dataset
from wattless.data._csv import MAX_REGRESSION_TARGET
from wattless.errors import DataError
from wattless.train import metrics_from_outputs
from wattless.trainer import train_model


def _regression(y: np.ndarray) -> Dataset:
    X = np.random.default_rng(0).normal(size=(len(y), 3)).astype(np.float32)
    return Dataset.from_arrays(X, y.astype(np.float32), task="regression")


@pytest.mark.parametrize("largest", [1e18, 3e38])
def test_targets_beyond_the_bound_are_refused_before_building_the_model(largest):
    y = np.linspace(-1, 1, 60) * largest
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning on the way (the targets' std is taken after the check)
        with pytest.raises(DataError, match=r"the (train|val|test) split holds regression target .* beyond \+-1e\+15"):
            train_model("mlp", _regression(y), epochs=1)


def test_targets_within_the_bound_train():
    y = np.linspace(-1, 1, 60) * MAX_REGRESSION_TARGET
    model = train_model("mlp", _regression(y), epochs=1)
    assert np.isfinite(model.meta["train"]["val"]["rmse"])


def test_regression_metrics_of_huge_predictions_do_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = metrics_from_outputs(np.array([[3e19], [-3e19]], np.float32), np.zeros(2, np.float32),
                                       "regression")
    assert metrics["rmse"] == pytest.approx(3e19, rel=1e-6)
