"""The one canonical JSON text of a value, for file headers and for hashing inputs into keys."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any, *, allow_nan: bool = False) -> str:
    """Sorted keys, compact, ASCII: equal data gives equal text. NaN and infinities raise unless ``allow_nan``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=allow_nan)
