from rich.console import Console

from wattless.report import comparison_rows, comparison_table, layer_table, record_table


def render(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_comparison_table_shows_the_same_cells_as_comparison_rows(fp32_record, int8_record):
    text = render(comparison_table([fp32_record, int8_record], title="digits / mlp"))
    assert "digits / mlp" in text
    assert "vs baseline 'fp32'" in " ".join(text.split())
    for row in comparison_rows([fp32_record, int8_record]):
        for cell in row.values():
            assert cell in text
    for header in ("Acc (%)", "Δ pts", "Size", "Smaller", "b1 latency", "× b1", "Energy/sample", "Less energy"):
        assert header in text


def test_comparison_tables_fit_an_80_column_terminal_without_wrapping_rows(fp32_record, int8_record):
    text = render(comparison_table([fp32_record, int8_record]))
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert sum(line.startswith("│ int8 ") for line in text.splitlines()) >= 2  # one line per row, in each table
    assert not any(line.startswith("│      ") for line in text.splitlines())  # no cell wrapped onto a second line


def test_comparison_table_uses_the_given_baseline(fp32_record, int8_record):
    text = render(comparison_table([fp32_record, int8_record], baseline=int8_record))
    assert "vs baseline 'int8'" in " ".join(text.split())
    assert "+0.20" in text  # fp32 is 0.2 points better than the int8 baseline
    assert "0.25x" in text  # and four times larger


def test_comparison_table_of_regression_records_has_an_rmse_column(regression_records):
    text = render(comparison_table(regression_records))
    assert "RMSE" in text and "Accuracy" not in text
    assert "53.1" in text and "+3.1" in text


def test_record_table_lists_every_measurement(int8_record):
    text = render(record_table(int8_record))
    for expected in ("int8", "94.80 %", "10,000 (10.0 % of parameters)", "97.7 KB (100,000 bytes)",
                     "390.6 KB (400,000 bytes)", "4.0x", "25,600,000", "1 µJ (estimate-45nm, b1)",
                     "prune.magnitude + quantize.ptq", "runs/demo/int8.onnx"):
        assert expected in text, expected
    latency_lines = [line for line in text.splitlines() if "onnxruntime" in line]
    assert len(latency_lines) == 2
    assert all(word in latency_lines[0].split() for word in ("int8", "1", "0.300", "0.270", "0.330"))


def test_record_table_of_a_regression_record_shows_its_error_metrics(regression_records):
    text = render(record_table(regression_records[1]))
    assert "RMSE" in text and "53.1" in text and "MAE" in text and "R²" in text and "0.48" in text
    assert "accuracy" not in text


def test_record_table_renders_missing_values_as_dashes():
    lines = render(record_table({"name": "bare"})).splitlines()
    size_line = next(line for line in lines if "size on disk" in line)
    latency_line = next(line for line in lines if "latency" in line)
    assert "–" in size_line and "–" in latency_line


def test_layer_table_shows_each_layers_share_of_the_macs():
    layers = [{"name": "fc1", "type": "Linear", "params": 100, "macs": 300},
              {"name": "fc2", "type": "Linear", "params": 10, "macs": 100},
              {"name": "act", "type": "ReLU"}]
    lines = render(layer_table(layers)).splitlines()
    assert "75.0" in next(line for line in lines if "fc1" in line)
    assert "25.0" in next(line for line in lines if "fc2" in line)
    assert "–" in next(line for line in lines if "act" in line)
    total = next(line for line in lines if "total" in line).split()
    assert "110" in total and "400" in total
