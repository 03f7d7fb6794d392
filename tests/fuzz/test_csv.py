"""Fuzzing ``csv:PATH`` tables: cells, header names and rows replaced by inf, NaN, huge numbers, text, empty values
and broken quoting, with any --target and --task, read by ``train`` (issue 17, item 7: an ``inf`` feature column and
a regression target near 1e300 ended in tracebacks)."""

from __future__ import annotations

import numpy as np
import pytest
from fuzzkit import CELLS, TEXTS, TRAIN_TINY_ON, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz


def seed_csv() -> list[list[str]]:
    """40 rows: numeric x1 and x2, categorical color, a regression target y and a class label."""
    rng = np.random.default_rng(0)
    rows = [["x1", "x2", "color", "y", "label"]]
    for i in range(40):
        x1, x2 = rng.normal(), int(rng.integers(0, 9))
        rows.append([f"{x1:.3f}", str(x2), ["red", "green", "blue"][i % 3], f"{2 * x1 + x2:.3f}",
                     "yes" if x1 > 0 else "no"])
    return rows


SEED_CSV = seed_csv()


def table_edits() -> st.SearchStrategy[list[tuple[int, int, str]]]:
    """(row, column, new text) triples; row 0 is the header, column 5 a new, extra field."""
    return st.lists(st.tuples(st.integers(0, len(SEED_CSV) - 1), st.integers(0, 5), CELLS), min_size=1, max_size=6)


def csv_bytes(edits: list[tuple[int, int, str]], keep_rows: int | None = None) -> bytes:
    rows = [list(row) for row in SEED_CSV[:keep_rows]]
    for row, column, text in edits:
        if row < len(rows):
            if column < len(rows[row]):
                rows[row][column] = text
            else:
                rows[row].append(text)
    return ("\n".join(",".join(row) for row in rows) + "\n").encode("utf-8", "surrogatepass")


@fuzz_settings(20)
@given(edits=table_edits(), keep_rows=st.none() | st.integers(0, len(SEED_CSV)),
       target=st.sampled_from(["label", "y", "color", "x2"]) | TEXTS,
       task=st.sampled_from([(), ("--task", "regression"), ("--task", "classification")]))
def test_hostile_csv(hostile, edits, keep_rows, target, task):
    data = csv_bytes(edits, keep_rows)
    hostile([*TRAIN_TINY_ON, "--dataset", "csv:d.csv", "--target", target, *task], {"d.csv": data})


@pytest.mark.parametrize(("edits", "target"), [
    ([(i, 0, "inf") for i in range(1, 40, 7)], "label"),
    ([(5, 3, "1e300")], "y"),
    ([(5, 3, "1e300"), (6, 3, "-1e300")], "y"),
    ([(5, 3, "inf")], "y"),
    ([(9, 1, "9" * 400)], "label"),
], ids=["inf-feature", "target-1e300", "target-pm1e300", "target-inf", "huge-int-feature"])
def test_the_issues_tables(hostile, edits, target):
    """The issue's cases: an inf feature column, a regression target near 1e300; and their neighbours."""
    hostile([*TRAIN_TINY_ON, "--dataset", "csv:d.csv", "--target", target], {"d.csv": csv_bytes(edits)})
