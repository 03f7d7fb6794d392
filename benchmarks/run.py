"""`make bench`: run the benchmark studies and rewrite BENCHMARKS.md with the measured tables.

Needs the real data sets: set WATTLESS_DATA (`make bench` points it at ../shared/data when present).
`python benchmarks/run.py quantization precision` re-runs only those studies: each study's section
is kept in benchmarks/results/<study>.md, and BENCHMARKS.md is rebuilt from all sections.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import compat  # noqa: E402
import edge  # noqa: E402  (benchmarks/ is the script's own folder)
import foundation  # noqa: E402
import frontier  # noqa: E402
import hardware  # noqa: E402
import patchtst  # noqa: E402
import precision  # noqa: E402
import pruning  # noqa: E402
import quantization  # noqa: E402
import search  # noqa: E402
import survey  # noqa: E402
import sweep  # noqa: E402
import tabular  # noqa: E402
import timeseries  # noqa: E402
from targets import energy_note  # noqa: E402

from wattless.measurement.env import collect_env
from wattless.report import write_results

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ROOT / "benchmarks" / "results"
STUDIES = ("foundation", "quantization", "precision", "pruning", "survey", "edge", "sweep", "search", "frontier",
           "tabular", "timeseries", "hardware", "patchtst", "compat")


def run_study(name: str, out_dir: Path) -> str:
    if name == "foundation":
        study = foundation.run(out_dir)
        write_results(study["records"], out_dir / "foundation", title="Foundation study",
                      notes=[energy_note(study["records"])])
        return study["markdown"]
    if name in ("quantization", "pruning", "survey", "search", "frontier") and not (out_dir / "lenet5.wlz").exists():
        raise SystemExit("run the foundation study first: it trains the fp32 LeNet-300-100 and LeNet-5")
    if name == "quantization":
        return quantization.run(out_dir, out_dir / "lenet300.wlz")["markdown"]
    if name == "pruning":
        return pruning.run(out_dir)["markdown"]
    if name == "timeseries":
        return timeseries.run(out_dir)["markdown"]
    if name == "compat":
        return compat.run(out_dir)["markdown"]
    if name == "patchtst":
        return patchtst.run(out_dir)["markdown"]
    if name == "tabular":
        return tabular.run(out_dir)["markdown"]
    if name == "sweep":
        return sweep.run(out_dir)["markdown"]
    if name == "search":
        return search.run(out_dir)["markdown"]
    if name == "frontier":
        return frontier.run(out_dir)["markdown"]
    if name == "edge":
        return edge.run(out_dir)["markdown"]
    if name == "hardware":
        markdown = hardware.run(out_dir)["markdown"]
        shutil.copyfile(out_dir / "hardware.png", SECTIONS / "hardware.png")
        return markdown
    if name == "survey":
        study = survey.run(out_dir)
        for model in survey.ROWS:
            shutil.copyfile(out_dir / f"survey-{model}.png", SECTIONS / f"survey-{model}.png")
        return study["markdown"]
    markdown = precision.run(out_dir)["markdown"]
    shutil.copyfile(out_dir / "precision.png", SECTIONS / "precision.png")  # committed beside the tables
    return markdown + "\n![Quality vs bits per method](benchmarks/results/precision.png)\n"


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(STUDIES))
    if unknown:
        raise SystemExit(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
    out_dir = ROOT / "runs" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    SECTIONS.mkdir(exist_ok=True)
    env = collect_env(1)
    for name in names or STUDIES:
        started = time.time()
        markdown = run_study(name, out_dir)
        footer = (f"\n*Study `{name}` measured on {env['cpu']} ({env['logical_cores']} logical cores), "
                  f"torch {env['torch']}, onnxruntime {env['onnxruntime']}; it took {time.time() - started:.0f} s. "
                  f"Command: `python benchmarks/run.py {name}`.*\n")
        (SECTIONS / f"{name}.md").write_text(markdown + footer)
    header = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`python benchmarks/run.py` with `WATTLESS_DATA` pointing at the data sets); "
        "every figure below comes from those runs, one section per study. Timings are medians of repeated runs "
        f"after warm-up on the machine below ({env['logical_cores']} logical cores): compare ratios within a "
        "table, not absolute numbers across machines. Every choice of a best variant is made on the validation "
        "split, and only the chosen variant's test figures are judged against the targets.",
        "",
        f"Machine: {env['cpu']}, {env['logical_cores']} logical cores, {env['os']}; Python {env['python']}, "
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, onnx {env['onnx']}, numpy {env['numpy']}.",
        "",
    ]
    sections = [(SECTIONS / f"{name}.md").read_text() for name in STUDIES if (SECTIONS / f"{name}.md").exists()]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(header) + "\n".join(sections))
    print((ROOT / "BENCHMARKS.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
