import pytest

from wattless.report.format import (
    MISSING,
    format_bytes,
    format_count,
    format_energy,
    format_ratio,
    format_recipe,
    format_seconds_ms,
)


@pytest.mark.parametrize(("n_bytes", "text"), [
    (512, "512 B"), (1024, "1.0 KB"), (437_862, "427.6 KB"), (5 * 1024**2, "5.0 MB"),
    (1024**2 - 1, "1.0 MB"),  # rounds up into the next unit instead of printing "1024.0 KB"
    (None, MISSING),
])
def test_format_bytes_uses_binary_units(n_bytes, text):
    assert format_bytes(n_bytes) == text


@pytest.mark.parametrize(("ms", "text"), [
    (0.011, "0.011 ms"), (0.3, "0.300 ms"), (12.3, "12.30 ms"), (0.0045, "4.5 µs"), (1250, "1.25 s"),
    (None, MISSING),
])
def test_format_seconds_ms_picks_a_readable_unit(ms, text):
    assert format_seconds_ms(ms) == text


@pytest.mark.parametrize(("joules", "text"), [
    (1.2e-6, "1.2 µJ"), (3.4e-9, "3.4 nJ"), (2.5e-3, "2.5 mJ"), (123.4e-9, "123 nJ"),
    (0.9996e-6, "1 µJ"),  # rounding to three digits moves it into the larger unit
    (None, MISSING),
])
def test_format_energy_uses_three_significant_digits(joules, text):
    assert format_energy(joules) == text


def test_format_ratio_and_count():
    assert format_ratio(3.94) == "3.9x"
    assert format_ratio(0.5) == "0.50x"
    assert format_ratio(None) == MISSING
    assert format_count(109_386) == "109,386"


def test_format_recipe_joins_steps_and_writes_inline_steps_as_json():
    assert format_recipe("int8") == "int8"
    assert format_recipe(["prune.magnitude", {"quantize.ptq": {"bits": 4}}]) == \
        'prune.magnitude + {"quantize.ptq":{"bits":4}}'
    assert format_recipe(None) == MISSING
