"""Fuzzing command-line option values: --batch, --threads, --repeats (``measure``), --seed, --lr and --model-arg
(``train``), --seed and --step strings (``compress``), and whole command lines of hostile words (issue 17, items 5, 8
and 10: ``--threads 100000`` aborted, ``--repeats 99999999999999999999`` ran forever, ``--seed
99999999999999999999999`` overflowed, plain ``wattless`` printed a traceback)."""

from __future__ import annotations

import pytest
from fuzzkit import INTS, TEXTS, TRAIN_TINY_ON, YAML_VALUES, fuzz_settings, option_texts
from hypothesis import given
from hypothesis import strategies as st

from wattless.techniques import discover_techniques, list_techniques

pytestmark = pytest.mark.fuzz

MEASURE = ("measure", "m.wlz", "--engines", "torch", "--json")
TIMING = {"--batch": "1", "--threads": "1", "--repeats": "1"}
SMALL = {"--batch": st.sampled_from(["1", "2,1", "1,3", " 1 ", "4"]), "--threads": st.sampled_from(["1", "2"]),
         "--repeats": st.sampled_from(["1", "2", "3"])}
"""Valid values that keep an example quick (large valid values are slow by right, not by bug)."""
TRAIN_DIGITS = (*TRAIN_TINY_ON, "--dataset", "digits")
COMPRESS = ("compress", "m.wlz", "-o", "out.wlz", "--batch", "1", "--repeats", "1", "-q")
PRUNE = "prune.magnitude:sparsity=0.5,finetune_epochs=0"
discover_techniques()
TECHNIQUES = list_techniques()
FIELDS = ["sparsity", "bits", "finetune_epochs", "lr", "clusters", "rank", "energy", "ratio", "n", "m", "epochs",
          "method", "scope", "schedule", "steps", "calibration", "mode", "version", "layer_sparsity", "zzz", ""]


def safe_value(option: str, text: str) -> bool:
    """Leave out values that are valid and large: they ask for long work, which is no bug (those that are invalid
    or hostile stay, huge ones included)."""
    words = text.replace(",", " ").split()  # str.split also splits on Unicode spaces such as U+0085
    try:
        number = float(words[-1]) if words else 0
    except ValueError:
        return True
    return not (option in ("--threads", "--repeats") and 4 < number <= 100_000
                or option == "--batch" and 64 < number <= 65536)


@fuzz_settings(20)
@given(option=st.sampled_from(sorted(TIMING)), data=st.data())
def test_timing_options(hostile, tiny_wlz, option, data):
    value = data.draw(option_texts(SMALL[option]).filter(lambda text: safe_value(option, text)), label="value")
    args = [*MEASURE, *(arg for name, default in TIMING.items() for arg in (name, default) if name != option)]
    hostile([*args, option, value], {"m.wlz": tiny_wlz})


@fuzz_settings(12)
@given(option=st.sampled_from(["--seed", "--lr"]), data=st.data())
def test_training_options(hostile, option, data):
    valid = st.integers(0, 2**32).map(str) if option == "--seed" else st.sampled_from(["0.01", "1e-3", "0.5"])
    hostile([*TRAIN_DIGITS, option, data.draw(option_texts(valid), label="value")])


def model_args() -> st.SearchStrategy[str]:
    """``key=value`` with the value as YAML: hidden sizes (small, huge, negative, nested, bombs), other keys."""
    odd = ["[0]", "[-7]", f"[{10**13}]", "[1e9]", "[.inf]", "[[8]]", "[8, zzz]", "{}", "8", "~", "[8", "[]"]
    hidden = st.one_of(st.lists(st.integers(1, 32), max_size=3).map(str), st.sampled_from(odd), YAML_VALUES)
    key = st.sampled_from(["hidden", "hidden", "dropout", "activation", "zzz", "", "hidden ", "=hidden"])
    return st.tuples(key, hidden).map("=".join) | TEXTS


@fuzz_settings(12)
@given(args=st.lists(model_args(), min_size=1, max_size=3))
def test_model_args(hostile, args):
    train = [arg for arg in TRAIN_DIGITS if arg != "hidden=[8]" and arg != "--model-arg"]
    hostile([*train, *(word for arg in args for word in ("--model-arg", arg))])


def steps() -> st.SearchStrategy[str]:
    """A ``--step`` string: a technique (or not) and key=value fields (values as YAML), or hostile text."""
    value = st.one_of(INTS.map(str), st.sampled_from(["0.5", "0.9", "-1", "1e999", ".nan", "true", "[1]", "{a: 1}",
                                                      "x" * 3000, "&a [*a]", ""]), YAML_VALUES)
    field = st.tuples(st.sampled_from(FIELDS), value).map("=".join)
    step = st.tuples(st.sampled_from(TECHNIQUES) | TEXTS, st.lists(field, max_size=3).map(",".join))
    return step.map(lambda t: f"{t[0]}:{t[1]}" if t[1] else t[0]) | TEXTS


@fuzz_settings(4)
@given(step=steps(), second=st.none() | steps(), seed=st.none() | option_texts(st.sampled_from(["0", "7"])))
def test_compress_steps_and_seed(hostile, tiny_wlz, step, second, seed):
    args = [*COMPRESS, "--step", step, *(("--step", second) if second is not None else ()),
            *(("--seed", seed) if seed is not None else ())]
    hostile(args, {"m.wlz": tiny_wlz})


@pytest.mark.parametrize("args", [
    ("--threads", "100000"), ("--repeats", "99999999999999999999"), ("--batch", "1,,2"), ("--batch", "0"),
    ("--batch", "99999999999999999999"), ("--threads", "-1"), ("--repeats", "0"),
], ids=lambda args: " ".join(args))
def test_the_issues_timing_values(hostile, tiny_wlz, args):
    options = [arg for name, default in TIMING.items() if name != args[0] for arg in (name, default)]
    hostile([*MEASURE, *options, *args], {"m.wlz": tiny_wlz})


@pytest.mark.parametrize("args", [
    ("--threads", "100000"), ("--seed", "99999999999999999999999"), ("--repeats", "99999999999999999999"),
], ids=lambda args: " ".join(args))
def test_the_issues_compress_values(hostile, tiny_wlz, args):
    """Refused before any work: ``compress --threads 100000`` wrote its outputs and then failed."""
    hostile([*COMPRESS, "--step", PRUNE, *args], {"m.wlz": tiny_wlz})


@pytest.mark.parametrize("args", [("runs", "show"), ("list", "zzz"), ("--zzz",), ("measure",)],
                         ids=lambda args: " ".join(args))
def test_bare_commands(hostile, args):
    """Commands missing what they need are one refusal line. (Plain ``wattless`` and ``wattless runs`` printed help
    and then a traceback: they now print the help alone, exit 2, see tests/cli/test_startup.py.)"""
    hostile(args)


COMMANDS = [("measure", "m.wlz", "--engines", "torch", "--batch", "1", "--repeats", "1"), ("inspect", "m.wlz"),
            ("export", "m.wlz"), ("compress", "m.wlz", "--batch", "1", "--repeats", "1"), ("train",),
            ("import", "m.wlz"), ("runs", "list"), ("runs", "show"), ("runs", "export"), ("report",), ("list",),
            ("search", "m.wlz"), ("sweep",)]
OPTIONS = ["--batch", "--threads", "--repeats", "--seed", "--lr", "--epochs", "--dataset", "-d", "--model", "-o",
           "--output", "--step", "--recipe", "--max-drop", "--objective", "--db", "--format", "--int8", "--json", "-q",
           "--engines", "--model-arg", "--target", "--task", "--force", "--trials", "--workers", "--", "-", "--help"]


@fuzz_settings(15)
@given(command=st.sampled_from(COMMANDS),
       words=st.lists(st.sampled_from(OPTIONS) | TEXTS | st.sampled_from(["m.wlz", "out.wlz", "digits", "1"]),
                      max_size=8))
def test_hostile_command_lines(hostile, tiny_wlz, command, words):
    """Any words after a command (which starts with options that keep a run short): a run, or one line saying what
    is wrong (never a traceback)."""
    if {"--max-drop", "--trials"} & set(words) or command[0] == "search":
        words = [word for word in words if word not in ("-o", "--output")]  # no search or ladder may start
    hostile([*command, *words], {"m.wlz": tiny_wlz})
