"""Image augmentation of training batches: random crop with zero padding, horizontal flip, Cutout, RandAugment.

:func:`wattless.train.fit` applies these to each training batch only; validation, test, calibration and
teacher outputs always see the data as loaded. Every random draw comes from one ``torch.Generator`` seeded
from the training seed, so the same seed gives the same weights, and the global torch RNG (dropout, weight
initialisation) is left as it would be without augmentation.

- ``crop``: pad ``padding`` pixels of zeros on every side, then cut a window of the original size at a random
  offset per image (CIFAR's usual pad 4 for 32x32). Inputs are standardised, so zero is the training mean.
- ``flip``: mirror each image left-right with probability 1/2.
- ``cutout`` (DeVries & Taylor 2017, arXiv:1708.04552): zero one square of side ``size`` pixels per image,
  centred at a uniformly random pixel and clipped at the borders, so near an edge less than the full square
  is zeroed.
- ``randaugment`` (Cubuk et al. 2020): ``kornia.augmentation.auto.RandAugment`` with kornia's default policy,
  ``n=2`` operations at magnitude ``m=10`` of kornia's 0..30 scale. An optional extra
  (``pip install 'wattless[augment]'``). kornia draws the operations once per batch (each image gets its own
  signs and probabilities), works on pixels in [0, 1], so the batch is un-standardised with the data set's
  recorded mean and std and standardised again, and needs RGB; grey images go through it as three equal
  channels and come back as their mean (colour operations leave grey images grey).

All work on batches of shape ``(N, C, H, W)`` with tensor operations, no loop over images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .errors import ConfigError

AUGMENTATIONS = ("crop", "flip", "randaugment", "cutout")
"""The names, in the order they are applied (Cutout last, as in its paper)."""
RANDAUGMENT_OPS = 2
RANDAUGMENT_MAGNITUDE = 10
INSTALL_HINT = "pip install 'wattless[augment]'"


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` ``(N, C, H, W)`` shifted by up to ``padding`` pixels each way, the gap filled with 0."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(h))[:, None, :, None]  # (N, 1, H, 1)
    cols = (left[:, None] + torch.arange(w))[:, None, None, :]  # (N, 1, 1, W)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def horizontal_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Each image of ``x`` ``(N, C, H, W)`` mirrored left-right with probability ``p``."""
    flip = torch.rand(len(x), generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` ``(N, C, H, W)`` with one ``size`` x ``size`` square, clipped at the borders, set to 0.

    The square covers rows ``cy - size // 2`` to ``cy - size // 2 + size - 1`` (likewise columns) around a
    centre ``(cy, cx)`` drawn uniformly over the image's pixels.
    """
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    top, left = cy - size // 2, cx - size // 2
    ys, xs = torch.arange(h), torch.arange(w)
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + size)  # (N, H)
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + size)  # (N, W)
    square = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (N, 1, H, W)
    return x.masked_fill(square, 0.0)


def _kornia_randaugment() -> nn.Module:
    try:
        from kornia.augmentation.auto import RandAugment
    except ImportError:
        raise ConfigError(f"augmentation 'randaugment' needs kornia; install it with: {INSTALL_HINT}") from None
    return RandAugment(n=RANDAUGMENT_OPS, m=RANDAUGMENT_MAGNITUDE)


def _pixel_statistics(preprocessing: dict[str, Any], channels: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``(1, C, 1, 1)`` that took [0, 1] pixels to the standardised inputs."""
    mean, std = preprocessing.get("mean"), preprocessing.get("std")
    try:
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        ok = preprocessing.get("kind") == "standardize" and len(mean_t) in (1, channels) and len(std_t) in (1, channels)
    except (TypeError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise ConfigError(f"augmentation 'randaugment' needs images standardised from [0, 1] pixels with a recorded "
                          f"mean and std per channel; data set {name!r} records {preprocessing.get('kind')!r}; "
                          "use crop, flip and cutout instead")
    shape = (1, -1, 1, 1)
    return mean_t.expand(channels).reshape(shape), std_t.expand(channels).reshape(shape)


class BatchAugmenter:
    """Applies the chosen augmentations to training batches; call it with ``(N, C, H, W)`` and get the same shape."""

    def __init__(self, names: Sequence[str], *, input_shape: Sequence[int], seed: int, crop_padding: int = 4,
                 cutout_size: int = 16, preprocessing: dict[str, Any] | None = None, dataset: str = "the data set"):
        unknown = [n for n in names if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"augmentation {unknown[0]!r} unknown; use any of {', '.join(AUGMENTATIONS)}")
        self.names = [n for n in AUGMENTATIONS if n in names]
        self.crop_padding, self.cutout_size = crop_padding, cutout_size
        shape = tuple(int(d) for d in input_shape)
        if self.names and len(shape) != 3:
            raise ConfigError(f"augmentation {self.names[0]!r} needs image inputs of shape (channels, height, width); "
                              f"{dataset!r} has inputs of shape {shape}; drop the augmentation for tabular or "
                              "time-series data")
        channels, height, width = shape if self.names else (0, 0, 0)
        if "crop" in self.names and crop_padding >= min(height, width):
            raise ConfigError(f"crop padding {crop_padding} must be smaller than the {height}x{width} images")
        if "cutout" in self.names and cutout_size > min(height, width):
            raise ConfigError(f"cutout {cutout_size} pixels is larger than the {height}x{width} images; "
                              f"choose at most {min(height, width)}")
        self.randaugment = None
        if "randaugment" in self.names:
            if channels not in (1, 3):
                raise ConfigError(f"augmentation 'randaugment' needs grey or RGB images (1 or 3 channels); "
                                  f"{dataset!r} has {channels}")
            self.mean, self.std = _pixel_statistics(preprocessing or {}, channels, dataset)
            self.randaugment = _kornia_randaugment()
        self.generator = torch.Generator().manual_seed(_stream_seed(seed))

    def __bool__(self) -> bool:
        return bool(self.names)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            if name == "crop":
                x = random_crop(x, self.crop_padding, self.generator)
            elif name == "flip":
                x = horizontal_flip(x, self.generator)
            elif name == "cutout":
                x = cutout(x, self.cutout_size, self.generator)
            else:
                x = self._randaugment(x)
        return x

    def _randaugment(self, x: torch.Tensor) -> torch.Tensor:
        # kornia draws from the global torch RNG: seed a fork of it from our generator, so runs repeat and
        # the training's own RNG stream is untouched.
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        pixels = (x * self.std + self.mean).clamp(0, 1)
        grey = pixels.shape[1] == 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.randaugment(pixels.repeat(1, 3, 1, 1) if grey else pixels)
        out = out.mean(dim=1, keepdim=True) if grey else out
        return ((out - self.mean) / self.std).to(x.dtype)


def _stream_seed(seed: int) -> int:
    """A seed for the augmentation stream, distinct from the batch-order generator's (which uses ``seed``)."""
    return (seed * 0x9E3779B97F4A7C15 + 0x5DEECE66D) % 2**63
