import math

import matplotlib.image
import pytest

from wattless.errors import WattlessError
from wattless.report import pareto_front, pareto_plot
from wattless.report.plots import DPI

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pareto_front_drops_dominated_points_and_sorts_by_x():
    points = [(4.0, 95.0), (1.0, 94.8), (2.0, 94.0), (3.0, 95.0), (1.5, 94.9)]
    # (2.0, 94.0) loses to (1.0, 94.8); (4.0, 95.0) loses to (3.0, 95.0), same accuracy but smaller.
    assert pareto_front(points) == [1, 4, 3]


def test_pareto_front_keeps_exact_ties_and_drops_non_finite_points():
    points = [(1.0, 90.0), (1.0, 90.0), (0.5, math.nan), (2.0, 95.0), (math.inf, 99.0)]
    assert pareto_front(points) == [0, 1, 3]


def test_pareto_front_when_lower_y_is_better():
    rmse_points = [(1.0, 55.0), (2.0, 50.0), (3.0, 52.0), (0.5, 60.0)]
    assert pareto_front(rmse_points, maximize_y=False) == [3, 0, 1]
    assert pareto_front(rmse_points, maximize_y=True) == [3]


def test_pareto_front_of_nothing_is_empty():
    assert pareto_front([]) == []


def assert_is_png_image(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000
    height, width, _channels = matplotlib.image.imread(path).shape
    assert (width, height) == pytest.approx((11 * DPI, 4.5 * DPI), abs=2)  # figsize 11 x 4.5 inches


def test_pareto_plot_writes_a_png_with_two_panels(tmp_path, fp32_record, int8_record):
    path = pareto_plot([fp32_record, int8_record], tmp_path / "pareto.png", baseline_name="fp32")
    assert path == tmp_path / "pareto.png"
    assert_is_png_image(path)
    assert [p.name for p in tmp_path.iterdir()] == ["pareto.png"]  # no temporary file left behind


def test_pareto_plot_handles_regression_and_missing_measurements(tmp_path, regression_records):
    records = [*regression_records, {"name": "unmeasured", "task": "regression"}]
    for record in records:
        record.pop("latency_ms", None)  # the latency panel has nothing to draw
    assert_is_png_image(pareto_plot(records, tmp_path / "regression.png"))


def test_pareto_plot_replaces_an_older_plot(tmp_path, fp32_record):
    path = tmp_path / "pareto.png"
    path.write_bytes(b"old")
    pareto_plot([fp32_record], path)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_pareto_plot_refuses_mixed_tasks_and_keeps_the_old_file(tmp_path, fp32_record, regression_records):
    path = tmp_path / "pareto.png"
    path.write_bytes(b"old")
    with pytest.raises(WattlessError):
        pareto_plot([fp32_record, *regression_records], path)
    assert path.read_bytes() == b"old"
