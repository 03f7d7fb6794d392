"""Batch augmentation: crop is a shifted window with zero padding, flip mirrors, Cutout zeroes one clipped square;
seeded, shape-checked, and the global RNG is left alone."""

import sys

import pytest
import torch

from wattless.augment import BatchAugmenter, cutout, horizontal_flip, random_crop
from wattless.errors import ConfigError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def distinct_images(n=64, c=2, h=6, w=5):
    """Every pixel value different and non-zero, so a window of it can be found in one place only."""
    return torch.arange(1, n * c * h * w + 1, dtype=torch.float32).reshape(n, c, h, w)


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    x, padding = distinct_images(), 2
    out = random_crop(x, padding, gen())
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    h, w = x.shape[2:]
    offsets = set()
    for image, result in zip(padded, out, strict=True):
        found = [(t, s) for t in range(2 * padding + 1) for s in range(2 * padding + 1)
                 if torch.equal(image[:, t:t + h, s:s + w], result)]
        assert len(found) == 1, "not a window of the padded image"
        offsets.add(found[0])
    assert len(offsets) > 10  # offsets differ between images (25 possible)
    assert (out == 0).any()  # some shifted windows take in the zero padding


def test_flip_mirrors_about_half_of_the_images():
    x = distinct_images()
    out = horizontal_flip(x, gen())
    assert out.shape == x.shape
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True))  # each image is one or the other
    assert 16 < sum(mirrored) < 48


@pytest.mark.parametrize("size", [1, 3, 4])
def test_cutout_zeroes_exactly_one_square_clipped_at_the_borders(size):
    x = torch.ones(400, 3, 9, 8)
    out = cutout(x, size, gen())
    assert out.shape == x.shape
    assert torch.equal(out[:, :1].expand_as(out), out)  # every channel alike
    full = 0
    for image in out[:, 0]:
        zero = image == 0
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert torch.equal(zero, zero.any(1)[:, None] & zero.any(0)[None, :])  # one rectangle
        for span, limit in ((rows, 9), (cols, 8)):
            assert torch.equal(span, torch.arange(span[0], span[-1] + 1))  # contiguous
            extent = len(span)
            assert extent == size or (extent < size and (span[0] == 0 or span[-1] == limit - 1))  # clipped only
        full += len(rows) == len(cols) == size
    assert full > 0 and (size == 1 or full < len(out))  # whole squares, and (size > 1) squares clipped at a border


def test_augmenter_is_seeded_and_leaves_the_global_rng_alone():
    x = distinct_images(c=3, h=8, w=8)

    def run(seed):
        augmenter = BatchAugmenter(["cutout", "flip", "crop"], input_shape=(3, 8, 8), seed=seed, crop_padding=2,
                                   cutout_size=3)
        return [augmenter(x), augmenter(x)]

    torch.manual_seed(5)
    first = run(0)
    after = torch.rand(3)
    torch.manual_seed(5)
    again = run(0)
    assert torch.equal(torch.rand(3), after)  # augmentation drew nothing from the global RNG
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])  # the next batch gets new draws
    assert not torch.equal(first[0], run(1)[0])


def test_augmenter_applies_in_a_fixed_order_whatever_the_order_given():
    x = distinct_images(c=1, h=8, w=8)
    a = BatchAugmenter(["cutout", "crop"], input_shape=(1, 8, 8), seed=3, cutout_size=2, crop_padding=1)
    b = BatchAugmenter(["crop", "cutout"], input_shape=(1, 8, 8), seed=3, cutout_size=2, crop_padding=1)
    assert a.names == ["crop", "cutout"]
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("shape", [(784,), (6, 100)])
def test_image_augmentations_are_refused_for_flat_and_series_inputs(shape):
    for name in ("crop", "flip", "cutout", "randaugment"):
        with pytest.raises(ConfigError, match=r"needs image inputs of shape \(channels, height, width\)"):
            BatchAugmenter([name], input_shape=shape, seed=0, dataset="table")


def test_sizes_larger_than_the_image_are_refused():
    with pytest.raises(ConfigError, match="crop padding 8 must be smaller than the 8x8 images"):
        BatchAugmenter(["crop"], input_shape=(1, 8, 8), seed=0, crop_padding=8)
    with pytest.raises(ConfigError, match="cutout 9 pixels is larger than the 8x8 images"):
        BatchAugmenter(["cutout"], input_shape=(1, 8, 8), seed=0, cutout_size=9)


def test_randaugment_without_kornia_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "kornia.augmentation.auto", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'wattless\[augment\]'"):
        BatchAugmenter(["randaugment"], input_shape=(3, 8, 8), seed=0,
                       preprocessing={"kind": "standardize", "mean": 0.5, "std": 0.25})


def test_randaugment_needs_pixel_statistics_and_grey_or_rgb():
    pytest.importorskip("kornia")
    with pytest.raises(ConfigError, match="mean and std"):
        BatchAugmenter(["randaugment"], input_shape=(3, 8, 8), seed=0, preprocessing={"kind": "none"})
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        BatchAugmenter(["randaugment"], input_shape=(2, 8, 8), seed=0,
                       preprocessing={"kind": "standardize", "mean": 0.5, "std": 0.25})


@pytest.mark.parametrize("channels", [1, 3])
def test_randaugment_changes_images_reproducibly_in_standardised_units(channels):
    pytest.importorskip("kornia")
    mean, std = [0.4] * channels, [0.2] * channels
    pixels = torch.rand(32, channels, 16, 16, generator=gen(1))
    x = (pixels - 0.4) / 0.2
    preprocessing = {"kind": "standardize", "mean": mean, "std": std}

    def run(seed):
        return BatchAugmenter(["randaugment"], input_shape=(channels, 16, 16), seed=seed,
                              preprocessing=preprocessing)(x)

    torch.manual_seed(7)
    out = run(0)
    after = torch.rand(2)
    torch.manual_seed(7)
    assert torch.equal(run(0), out)
    assert torch.equal(torch.rand(2), after)  # kornia ran on a fork of the global RNG
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x) and not torch.equal(out, run(1))
    back = out * 0.2 + 0.4  # still pixels in [0, 1] once un-standardised
    assert float(back.min()) >= -1e-5 and float(back.max()) <= 1 + 1e-5
