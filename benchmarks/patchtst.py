"""Hugging Face PatchTST on BasicMotions (issue 16): the time-series study's table for ``hf:patchtst``, built from a
config (no download) and put through the same dynamic and static int8, pruning and distillation as the zoo's
``ts_transformer``.

The training settings are chosen on validation first: each candidate of :data:`CANDIDATES` is trained with every
seed of :data:`SEEDS`, and the one with the lowest mean validation loss is kept (validation accuracy saturates on
BasicMotions' 8 validation series); the study then trains it with seed 0, as the zoo transformer is trained.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from timeseries import Subject
from timeseries import run as run_timeseries

import wattless
from wattless.models.hf import ARCHITECTURES

hf_defaults = ARCHITECTURES["patchtst"][0]

CANDIDATES = ({"epochs": 100}, {"epochs": 30, "batch_size": 8}, {"epochs": 60, "batch_size": 8})
SEEDS = (0, 1, 2)
STUDENT = {"student": "hf:patchtst", "student_kwargs": {"d_model": 48, "num_hidden_layers": 1},
           "temperature": 2.0, "alpha": 0.5, "epochs": 100, "lr": 0.003}


def choose_training(data) -> tuple[dict[str, Any], str]:
    """The candidate with the lowest mean validation loss over the seeds, and a sentence saying so."""
    losses = {}
    for index, candidate in enumerate(CANDIDATES):
        losses[index] = statistics.mean(wattless.train("hf:patchtst", data, seed=seed, **candidate)
                                        .meta["train"]["val"]["loss"] for seed in SEEDS)
    best = min(losses, key=losses.get)
    tried = "; ".join(f"{_settings(CANDIDATES[i])}: {loss:.3f}" for i, loss in losses.items())
    return CANDIDATES[best], (f"Training chosen on validation: mean validation loss over seeds "
                              f"{', '.join(map(str, SEEDS))} of each candidate ({tried}); kept "
                              f"{_settings(CANDIDATES[best])}.")


def _settings(candidate: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in candidate.items())


def run(out_dir: Path) -> dict[str, Any]:
    data = wattless.load_dataset("basic-motions")
    training, chosen = choose_training(data)
    _, config, _ = hf_defaults(data.input_shape, data.num_outputs)
    described = "config " + ", ".join(f"{k} {v}" for k, v in config.items()) + " (wattless's defaults, the rest " \
        "transformers' own)"
    subject = Subject(model="hf:patchtst", train=training, student=STUDENT, folder="patchtst", issue="issue 16",
                      title="## Hugging Face PatchTST on BasicMotions (issue 16)", chosen=chosen, described=described)
    return run_timeseries(out_dir, subject=subject)
