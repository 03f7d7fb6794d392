"""Fuzzing YAML studies (``wattless sweep STUDY.yaml``), recipes (``compress --recipe R.yaml``) and ladders
(``compress --max-drop --ladder L.yaml``): valid seed files with fields replaced by hostile values, YAML's own
weapons (alias bombs, tags, self-references, timestamps) and damaged text; each run succeeds or refuses with one
short line, within bounded memory (issue 17, item 1)."""

from __future__ import annotations

import pytest
import yaml
from fuzzkit import (
    TEXTS,
    TINY_STUDY,
    YAML_VALUES,
    YAML_WEAPONS,
    alias_bomb,
    edited,
    fuzz_settings,
    metadata_paths,
)
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

STUDY = yaml.safe_load(TINY_STUDY)
RECIPE = {"name": "r", "description": "half the weights",
          "steps": [{"prune.magnitude": {"sparsity": 0.5, "finetune_epochs": 0}}]}
LADDER = {"size": [{"name": "half", "steps": [{"prune.magnitude": {"sparsity": 0.5, "finetune_epochs": 0}}]}]}
SWEEP = ("sweep", "s.yaml", "--db", "runs.db", "--out", "runs", "--workers", "1", "-q")
COMPRESS = ("compress", "m.wlz", "--recipe", "r.yaml", "-o", "out.wlz", "--batch", "1", "--repeats", "1", "-q")
LADDER_RUN = ("compress", "m.wlz", "--max-drop", "5", "--ladder", "l.yaml", "-o", "out.wlz", "--batch", "1",
              "--repeats", "1", "-q")
TRIALS_FAILED = "trials failed"
"""A sweep whose trials failed refuses after work that stays in its database (a rerun retries them)."""
HOLE = "HOLE9f3a"
def document(seed: dict, path: tuple, snippet: str) -> str:
    """``seed`` as one flow-style YAML line, with the raw ``snippet`` at ``path``."""
    text = yaml.safe_dump(edited(seed, [(path, HOLE, False)]), default_flow_style=True, width=2**30)
    return text.replace(HOLE, snippet) if HOLE in text else text + snippet


def damaged(text: str) -> st.SearchStrategy[bytes]:
    """``text`` cut short, with a slice replaced by hostile text or bytes, or with a BOM or NUL inserted."""
    data = text.encode()
    cut = st.integers(0, len(data)).map(lambda end: data[:end])
    spliced = st.tuples(st.integers(0, len(data)), st.integers(0, 20), TEXTS.map(str.encode) | st.binary(max_size=8))
    return cut | spliced.map(lambda t: data[:t[0]] + t[2] + data[t[0] + t[1]:])


def seed_edits(seed: dict) -> st.SearchStrategy[tuple[tuple, str]]:
    return st.tuples(st.sampled_from(metadata_paths(seed) + [("zzz",)]), YAML_VALUES)


@fuzz_settings(6)
@given(data=st.data())
def test_hostile_study_fields(hostile, tiny_wlz, data):
    path, snippet = data.draw(seed_edits(STUDY), label="field")
    hostile(SWEEP, {"s.yaml": document(STUDY, path, snippet).encode()}, partial=TRIALS_FAILED)


@fuzz_settings(10)
@given(data=st.data())
def test_damaged_study_text(hostile, data):
    text = data.draw(damaged(TINY_STUDY), label="study")
    hostile(SWEEP, {"s.yaml": text}, partial=TRIALS_FAILED)


@fuzz_settings(4)
@given(data=st.data())
def test_hostile_recipe_fields(hostile, tiny_wlz, data):
    path, snippet = data.draw(seed_edits(RECIPE), label="field")
    hostile(COMPRESS, {"m.wlz": tiny_wlz, "r.yaml": document(RECIPE, path, snippet).encode()})


@fuzz_settings(8)
@given(weapon=YAML_WEAPONS, where=st.sampled_from(["recipe", "ladder", "study"]), data=st.data())
def test_yaml_weapons_anywhere(hostile, tiny_wlz, weapon, where, data):
    """The weapons alone always end in a refusal or a run of the seed file; drawn where each reader looks."""
    seed, name, args = {"recipe": (RECIPE, "r.yaml", COMPRESS), "ladder": (LADDER, "l.yaml", LADDER_RUN),
                        "study": (STUDY, "s.yaml", SWEEP)}[where]
    paths = [p for p in metadata_paths(seed) if not isinstance(p[-1], int)]
    path = data.draw(st.sampled_from(paths), label="path")
    hostile(args, {"m.wlz": tiny_wlz, name: document(seed, path, weapon).encode()}, partial=TRIALS_FAILED)


ISSUE_BOMB = alias_bomb(9, 9)


@pytest.mark.parametrize("where", ["study name", "study seeds", "recipe description", "recipe name"])
def test_the_issues_alias_bomb(hostile, tiny_wlz, where):
    """A 9-level alias bomb (a few hundred bytes, 387 million leaves once expanded) under the fields the issue
    names: refused at once, in one short line, without the memory its expansion would take."""
    kind, field = where.split()
    if kind == "study":
        hostile(SWEEP, {"s.yaml": document(STUDY, (field,), ISSUE_BOMB).encode()})
    else:
        hostile(COMPRESS, {"m.wlz": tiny_wlz, "r.yaml": document(RECIPE, (field,), ISSUE_BOMB).encode()})
