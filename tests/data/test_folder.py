"""folder:PATH image data sets: one sub-folder per class, read with Pillow, standardized per channel with train
statistics; unreadable, mixed-size and single-class folders are one clear error naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import wattless
from wattless.errors import DataError


def write_images(root, classes=("cat", "dog"), per_class=10, size=(8, 6), mode="RGB"):
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = rng.integers(0, 128, size=shape) + 100 * label
            Image.fromarray(pixels.astype(np.uint8), mode).save(root / name / f"{i}.png")
    return root


def test_images_become_standardized_class_splits(tmp_path):
    root = write_images(tmp_path / "pets")
    data = wattless.load_dataset(f"folder:{root}")
    assert data.classes == ["cat", "dog"] and data.input_shape == (3, 6, 8)
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 20 and set(data.y_test) == {0, 1}
    assert np.allclose(data.X_train.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert data.preprocessing["channels"] == 3 and data.preprocessing["size"] == [6, 8]


def test_size_and_channels_options_resize_and_convert(tmp_path):
    root = write_images(tmp_path / "pets")
    Image.new("RGB", (20, 20)).save(root / "cat" / "big.png")
    data = wattless.load_dataset(f"folder:{root}?size=4x5&channels=1")
    assert data.input_shape == (1, 4, 5) and data.preprocessing["resized"] is True


@pytest.mark.parametrize("spoil, message", [
    (lambda root: (root / "cat" / "bad.png").write_bytes(b"not an image"), r"bad.png: cannot read the image"),
    (lambda root: Image.new("RGB", (3, 3)).save(root / "dog" / "odd.png"), r"odd.png: 3x3 pixels, but .*size=HxW"),
])
def test_bad_images_name_the_file(tmp_path, spoil, message):
    root = write_images(tmp_path / "pets")
    spoil(root)
    with pytest.raises(DataError, match=message):
        wattless.load_dataset(f"folder:{root}")


def test_one_class_or_bad_options_are_one_error(tmp_path):
    root = write_images(tmp_path / "one", classes=("cat",))
    with pytest.raises(DataError, match="at least two class sub-folders"):
        wattless.load_dataset(f"folder:{root}")
    with pytest.raises(DataError, match="unknown folder option 'zoom'"):
        wattless.load_dataset(f"folder:{root}?zoom=2")
    with pytest.raises(DataError, match="does not exist"):
        wattless.load_dataset(f"folder:{tmp_path / 'absent'}")
