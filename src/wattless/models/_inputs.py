"""Sample inputs a model accepts, for tracing, checking exports, counting operations and timing: standard normal
floats, or, for a model that looks up token ids in an embedding table, integer ids inside its smallest table (as
floats, the dtype every engine feeds; the model casts them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

INPUT_SEED = 0


def vocabulary(model: nn.Module) -> int | None:
    """The size of the smallest ``nn.Embedding`` table in ``model`` (ids below it are valid), or None."""
    sizes = [module.num_embeddings for module in model.modules() if isinstance(module, nn.Embedding)]
    return min(sizes) if sizes else None


def sample_inputs(batch: int, input_shape: tuple[int, ...], vocab: int | None = None,
                  seed: int = INPUT_SEED) -> np.ndarray:
    """``(batch, *input_shape)`` float32 samples, the same for the same arguments: standard normal, or with
    ``vocab`` integer ids in ``[0, vocab)``."""
    rng = np.random.default_rng(seed)
    if vocab is not None:
        return rng.integers(0, vocab, (batch, *input_shape)).astype(np.float32)
    return rng.standard_normal((batch, *input_shape), dtype=np.float32)


def zero_sample_forward(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[Any, Exception | None]:
    """``model``'s output on one zero sample (eval mode, no gradients; its mode restored after), or None and the
    exception its forward raised: the user's code may fail in any way, and each caller says what that means."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(torch.zeros(1, *input_shape)), None
    except Exception as error:  # reported by the caller, which knows what the forward was for
        return None, error
    finally:
        model.train(was_training)


def error_line(error: BaseException) -> str:
    """``Type: last line of the message`` (the line that says what went wrong), at most 200 characters of it."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[-1][:200]}" if text else type(error).__name__
