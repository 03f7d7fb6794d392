"""`make bench`: run the benchmark studies and rewrite BENCHMARKS.md with the measured tables.

Needs the real data sets: set WATTLESS_DATA (CI and `make bench` point it at ../shared/data when present).
"""

from __future__ import annotations

import time
from pathlib import Path

import foundation  # noqa: E402  (benchmarks/ is the script's own folder)

from wattless.measurement.env import collect_env
from wattless.report import write_results

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    out_dir = ROOT / "runs" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    study = foundation.run(out_dir)
    write_results(study["records"], out_dir / "foundation", title="Foundation study",
                  notes=["Energy is an analytical 45 nm estimate (no meter on this machine)."])
    env = collect_env(1)
    header = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`python benchmarks/run.py` with `WATTLESS_DATA` pointing at the data sets); "
        "every figure below comes from that run. Timings are medians of repeated runs after warm-up on a "
        "shared 2-core machine: compare ratios within a table, not absolute numbers across machines.",
        "",
        f"Machine: {env['cpu']}, {env['logical_cores']} logical cores, {env['os']}; Python {env['python']}, "
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, onnx {env['onnx']}, numpy {env['numpy']}. "
        f"Run took {time.time() - started:.0f} s.",
        "",
    ]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(header) + study["markdown"])
    print((ROOT / "BENCHMARKS.md").read_text())


if __name__ == "__main__":
    main()
