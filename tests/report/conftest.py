"""Hand-made result records whose ratios are easy to check by hand."""

import pytest


def latency(engine, precision, batch, median, threads=1):
    return {"engine": engine, "precision": precision, "batch": batch, "threads": threads,
            "median": median, "p25": 0.9 * median, "p75": 1.1 * median}


@pytest.fixture
def fp32_record():
    """Baseline: 95 % accuracy, 400,000 bytes, 1.0 ms at batch 1 on torch fp32, 4 µJ per sample."""
    return {
        "name": "fp32", "model": "mlp", "dataset": "digits", "recipe": None, "seed": 0,
        "task": "classification", "accuracy": 0.95, "params": 100_000, "nonzero_params": 100_000,
        "size_bytes": 400_000, "size_bytes_fp32": 400_000, "compression_ratio": 1.0,
        "macs": 100_000, "bops": 102_400_000,
        "latency_ms": [latency("torch", "fp32", 1, 1.0), latency("torch", "fp32", 256, 20.0)],
        "energy_j_per_sample": {"value": 4e-6, "method": "estimate-45nm", "batch": 1},
        "artifact": "runs/demo/fp32.wlz",
        "env": {"cpu": "Test CPU 3000", "threads": 1, "versions": {"torch": "2.13.0", "onnxruntime": "1.22"}},
    }


@pytest.fixture
def int8_record():
    """94.8 % accuracy, 100,000 bytes, fastest at batch 1 on ONNX Runtime int8 (0.3 ms), 1 µJ."""
    return {
        "name": "int8", "model": "mlp", "dataset": "digits", "recipe": ["prune.magnitude", "quantize.ptq"],
        "seed": 0, "task": "classification", "accuracy": 0.948, "params": 100_000, "nonzero_params": 10_000,
        "size_bytes": 100_000, "size_bytes_fp32": 400_000, "compression_ratio": 4.0,
        "macs": 100_000, "bops": 25_600_000,
        "latency_ms": [latency("torch", "fp32", 1, 0.9), latency("onnxruntime", "int8", 1, 0.3),
                       latency("onnxruntime", "int8", 256, 5.0)],
        "energy_j_per_sample": {"value": 1e-6, "method": "estimate-45nm", "batch": 1},
        "artifact": "runs/demo/int8.onnx",
        "env": {"cpu": "Test CPU 3000", "threads": 1},
    }


@pytest.fixture
def regression_records():
    """Two regression variants: RMSE 50.0 (baseline) and 53.1."""
    base = {"name": "fp32", "task": "regression", "rmse": 50.0, "mae": 40.0, "r2": 0.5, "size_bytes": 8000,
            "latency_ms": [latency("torch", "fp32", 1, 0.05)]}
    small = {"name": "int4", "task": "regression", "rmse": 53.1, "mae": 42.0, "r2": 0.48, "size_bytes": 1000,
             "latency_ms": [latency("torch", "fp32", 1, 0.04)]}
    return [base, small]


@pytest.fixture
def markdown_names():
    """Names Markdown would read as emphasis, a cell break, code, a link, an image, a heading, a list, HTML."""
    return ["**x** | y", "_em_ `code` [link](http://e.com) ![i](x.png) ~~gone~~", "# heading", "1. item",
            "<b>bold</b> &amp; \\*", "two\nlines"]


@pytest.fixture
def gfm():
    """Markdown rendered to HTML the way GitHub reads it (CommonMark with GFM tables and strike-through)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render
