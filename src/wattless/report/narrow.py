"""Tables that stay readable in an 80-column terminal: columns that do not fit beside the key columns go to a
further table that repeats the key columns, so no row wraps onto several lines."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

TERMINAL_WIDTH = 80
_COLUMN_OVERHEAD = 3
"""Characters a column adds besides its text in Rich's default box (padding and the separator)."""


def _width(header: str, cells: Sequence[str]) -> int:
    return max([len(Text.from_markup(header).plain), *(len(Text.from_markup(c).plain) for c in cells)])


def column_groups(headers: Sequence[str], rows: Sequence[Sequence[str]], *, keys: int = 1,
                  width: int = TERMINAL_WIDTH) -> list[list[int]]:
    """Indices of the non-key columns, in order, grouped so that each group plus the key columns fits ``width``."""
    widths = [_width(h, [row[i] for row in rows]) + _COLUMN_OVERHEAD for i, h in enumerate(headers)]
    base = sum(widths[:keys]) + 1
    groups: list[list[int]] = [[]]
    used = base
    for index in range(keys, len(headers)):
        if groups[-1] and used + widths[index] > width:
            groups.append([])
            used = base
        groups[-1].append(index)
        used += widths[index]
    return groups


def narrow_tables(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None,
                  caption: str | None = None, keys: int = 1, styles: Sequence[str | None] | None = None,
                  left: int | None = None, width: int = TERMINAL_WIDTH) -> Group:
    """One or more Rich tables of ``rows`` under ``headers`` (each ``width`` wide at most when the cells allow):
    the first ``keys`` columns in every table, the title on the first, the caption on the last. Columns before
    ``left`` (default: the key columns) are left-aligned, the others right-aligned."""
    left = keys if left is None else left
    groups = column_groups(headers, rows, keys=keys, width=width)
    tables = []
    for position, group in enumerate(groups):
        table = Table(title=title if position == 0 else None, caption=caption if position == len(groups) - 1 else None)
        for index in [*range(keys), *group]:
            table.add_column(headers[index], justify="left" if index < left else "right", no_wrap=index < keys)
        for row_number, row in enumerate(rows):
            table.add_row(*(row[index] for index in [*range(keys), *group]),
                          style=styles[row_number] if styles else None)
        tables.append(table)
    return Group(*tables)
