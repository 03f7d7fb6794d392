"""``folder:PATH`` data sets: images laid out one sub-folder per class (``PATH/cat/1.png``, ``PATH/dog/7.jpg``), read
with Pillow.

Options follow the path after ``?``: ``folder:PATH?size=32x32&channels=1`` resizes every image (bilinear) and converts
it to grey (1) or RGB (3); without ``size`` all images must share one size, without ``channels`` they take the first
image's (grey stays grey, anything else becomes RGB). Pixels are scaled to [0, 1] and standardized per channel with
the train split's mean and std; splits are seeded and stratified, as for the built-in sets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._dataset import Dataset, register_prefix
from ._split import Task, split_indices

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_SIDE = 1024
"""Largest image side accepted (pixels), resized or not."""


@register_prefix("folder:")
def load_folder(spec: str | os.PathLike[str], *, target: str | None = None, task: Task | None = None,
                split_seed: int = 0) -> Dataset:
    """Images under ``PATH/<class>/``, classes in sorted folder-name order (``spec`` is ``PATH[?options]``)."""
    if target is not None or task not in (None, "classification"):
        raise DataError("an image folder is a classification data set: --target and --task do not apply")
    path, options = _parse(str(spec))
    classes = sorted(entry.name for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    files = [(f, label) for label, name in enumerate(classes) for f in sorted((path / name).rglob("*"))
             if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    counts = {name: sum(1 for _, label in files if label == index) for index, name in enumerate(classes)}
    if sum(1 for count in counts.values() if count) < 2:
        raise DataError(f"{path}: needs at least two class sub-folders holding images ({', '.join(IMAGE_SUFFIXES)}); "
                        f"found {', '.join(f'{k} ({v})' for k, v in counts.items()) or 'none'}")
    pixels = _read_images([f for f, _ in files], path, options)
    y = np.array([label for _, label in files], dtype=np.int64)
    train, val, test = split_indices(y, "classification", split_seed=split_seed)
    mean, std = _channel_stats(pixels[train])
    X = pixels.astype(np.float32) / 255.0
    X -= mean.reshape(1, -1, 1, 1)
    X /= std.reshape(1, -1, 1, 1)
    return Dataset(name=f"folder:{spec}", task="classification", X_train=X[train], y_train=y[train], X_val=X[val],
                   y_val=y[val], X_test=X[test], y_test=y[test], classes=classes,
                   preprocessing={"kind": "standardize", "scope": "channel", "pixel_scale": 1 / 255,
                                  "mean": mean.tolist(), "std": std.tolist(), "size": list(pixels.shape[2:]),
                                  "channels": int(pixels.shape[1]), "resized": "size" in options},
                   source=str(path))


def _parse(spec: str) -> tuple[Path, dict[str, Any]]:
    """``PATH[?size=HxW&channels=C]`` as the folder and checked options."""
    location, _, query = spec.partition("?")
    path = Path(location)
    if not path.is_dir():
        raise DataError(f"image folder {location!r} does not exist or is not a folder; check the path")
    options: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key == "size":
            sides = value.lower().split("x")
            if len(sides) == 1:
                sides *= 2
            if len(sides) != 2 or not all(s.isdigit() and 1 <= int(s) <= MAX_SIDE for s in sides):
                raise DataError(f"folder option size={value!r}: give HEIGHTxWIDTH in pixels (1 to {MAX_SIDE}), "
                                "e.g. size=32x32")
            options["size"] = (int(sides[0]), int(sides[1]))
        elif key == "channels":
            if value not in ("1", "3"):
                raise DataError(f"folder option channels={value!r}: use 1 (grey) or 3 (RGB)")
            options["channels"] = int(value)
        else:
            raise DataError(f"unknown folder option {key!r}; use size=HxW and channels=1|3, e.g. "
                            f"folder:{location}?size=32x32&channels=3")
    return path, options


def _read_images(files: list[Path], root: Path, options: dict[str, Any]) -> np.ndarray:
    """uint8 ``(n, channels, height, width)``: every image converted and, with ``size``, resized."""
    from PIL import Image, UnidentifiedImageError

    mode = {1: "L", 3: "RGB"}.get(options.get("channels", 0))
    size = options.get("size")
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                mode = mode or ("L" if image.mode in ("L", "1", "I;16", "I", "F") else "RGB")
                image = image.convert(mode)
                if size is not None:
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{file}: cannot read the image ({type(exc).__name__}); remove or replace the file") \
                from None
        if max(array.shape[:2]) > MAX_SIDE:
            raise DataError(f"{file}: {array.shape[1]}x{array.shape[0]} pixels is larger than {MAX_SIDE}; "
                            f"resize with folder:{root}?size=HxW")
        if images and array.shape != images[0].shape:
            raise DataError(f"{file}: {array.shape[1]}x{array.shape[0]} pixels, but {files[0].name} is "
                            f"{images[0].shape[1]}x{images[0].shape[0]}; resize them all with "
                            f"folder:{root}?size=HxW")
        images.append(array)
    stacked = np.stack(images)
    return stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)


def _channel_stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float32) of uint8 pixels scaled to [0, 1]; a flat channel keeps std 1."""
    scaled = pixels.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 2, 3))
    std = scaled.std(axis=(0, 2, 3))
    return mean.astype(np.float32), np.where(std < 1e-12, 1.0, std).astype(np.float32)
