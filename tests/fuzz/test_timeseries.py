"""Fuzzing ``ts:PATH`` UEA/UCR time-series files: data tokens, header lines and whole lines replaced by inf, NaN,
huge numbers and text, and files cut short, read by ``train``."""

from __future__ import annotations

import numpy as np
import pytest
from fuzzkit import CELLS, TEXTS, TRAIN_TINY_ON, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

TS_HEADER = ["@problemName Toy", "@timeStamps false", "@missing false", "@univariate false", "@dimensions 2",
             "@equalLength true", "@seriesLength 6", "@classLabel true walk run", "@data"]
HEADER_LINES = st.sampled_from([
    "@timeStamps true", "@equalLength false", "@classLabel false", "@classLabel true", "@dimensions 0",
    "@dimensions 99999999999999999999", "@seriesLength -1", "@targetLabel true", "@data", "@univariate true",
    "@missing true", "@problemName", "@zzz 1", "@", "#comment", "", "@classLabel true walk walk",
])


def seed_ts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = list(TS_HEADER)
    for i in range(n):
        channels = rng.normal(size=(2, 6))
        lines.append(":".join(",".join(f"{v:.3f}" for v in channel) for channel in channels)
                     + (":walk" if i % 2 else ":run"))
    return lines


SEED_TS = {"TRAIN": seed_ts(12, 0), "TEST": seed_ts(6, 1)}


def ts_edit() -> st.SearchStrategy[tuple]:
    """One change to the TRAIN or TEST file: a data token, a whole line, a header line, a cut."""
    part = st.sampled_from(["TRAIN", "TEST"])
    line = st.integers(0, len(SEED_TS["TEST"]) + len(TS_HEADER))
    return st.one_of(
        st.tuples(st.just("token"), part, line, st.integers(0, 12), CELLS),
        st.tuples(st.just("line"), part, line, TEXTS | HEADER_LINES),
        st.tuples(st.just("cut"), part, st.integers(0, 2000)),
    )


def ts_files(edits: list[tuple]) -> dict[str, bytes]:
    lines = {part: list(text) for part, text in SEED_TS.items()}
    cuts = {}
    for kind, part, *rest in edits:
        if kind == "token" and rest[0] < len(lines[part]):
            tokens = lines[part][rest[0]].replace(":", ",:,").split(",")
            tokens[rest[1] % len(tokens)] = rest[2]
            lines[part][rest[0]] = ",".join(tokens).replace(",:,", ":")
        elif kind == "line" and rest[0] <= len(lines[part]):
            lines[part][rest[0]:rest[0] + 1] = [rest[1]]
        elif kind == "cut":
            cuts[part] = rest[0]
    texts = {part: ("\n".join(text) + "\n").encode("utf-8", "surrogatepass") for part, text in lines.items()}
    return {f"Toy_{part}.ts": text[: len(text) - cuts[part]] if part in cuts else text for part, text in texts.items()}


@fuzz_settings(15)
@given(edits=st.lists(ts_edit(), min_size=1, max_size=4))
def test_hostile_timeseries(hostile, edits):
    hostile([*TRAIN_TINY_ON, "--dataset", "ts:Toy"], ts_files(edits))
