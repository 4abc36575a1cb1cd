"""Tests for ddr_eval.data: embedded and folder image loading, splitting, patch sampling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from ddr_eval.data import (
    DEFAULT_TEST_IMAGES,
    EMBEDDED_IMAGES,
    Image,
    PatchSet,
    load_embedded,
    load_folder,
    load_images,
    sample_patches,
    split_images,
)
from ddr_eval.core.errors import UserError


# --- embedded images ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_embedded() -> list[Image]:
    return load_embedded(["chelsea", "coins", "clock", "coffee"])


def test_embedded_images_are_float_rgb_in_unit_range(small_embedded):
    assert [image.name for image in small_embedded] == ["chelsea", "coins", "clock", "coffee"]
    for image in small_embedded:
        assert image.pixels.dtype == np.float32
        assert image.pixels.ndim == 3 and image.pixels.shape[2] == 3
        assert 0.0 <= image.pixels.min() and image.pixels.max() <= 1.0


def test_embedded_shapes_match_scikit_image(small_embedded):
    from skimage import data

    for image in small_embedded:
        assert image.pixels.shape[:2] == getattr(data, image.name)().shape[:2]


def test_grey_embedded_photos_are_replicated_and_colour_kept(small_embedded):
    colour = {entry.name: entry.colour for entry in EMBEDDED_IMAGES}
    for image in small_embedded:
        channels_equal = np.array_equal(image.pixels[..., 0], image.pixels[..., 1]) and np.array_equal(
            image.pixels[..., 1], image.pixels[..., 2]
        )
        assert channels_equal is (not colour[image.name])


def test_every_embedded_photo_equals_scikit_images_own_loader():
    """Read from the packaged file with Pillow, each photo is skimage.data's, pixel for pixel."""
    from skimage import data
    from skimage.util import img_as_float32

    skimage_names = [e.name for e in EMBEDDED_IMAGES if e.package == "skimage" and hasattr(data, e.name)]
    for image in load_embedded(skimage_names):
        expected = img_as_float32(getattr(data, image.name)())
        expected = expected if expected.ndim == 3 else np.repeat(expected[..., None], 3, axis=2)
        assert np.array_equal(image.pixels, expected), image.name


# the held-out photographs added for issue #18, each as its own package's loader returns it
def _own_loader(name: str) -> np.ndarray:
    if name == "motorcycle":
        from skimage import data

        return data.stereo_motorcycle()[0]
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import matplotlib.cbook
    from PIL import Image as PILImage

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
        return np.asarray(PILImage.open(file))


@pytest.mark.parametrize("name", ["motorcycle", "china", "flower", "grace_hopper"])
def test_added_held_out_photos_load_as_real_size_colour_photos(name):
    (image,) = load_embedded([name])
    height, width, channels = image.pixels.shape
    assert channels == 3 and min(height, width) >= 400  # a real photograph, not a thumbnail or icon
    assert not np.array_equal(image.pixels[..., 0], image.pixels[..., 1])  # colour
    assert image.pixels.std() > 0.05  # not a flat or synthetic image
    expected = _own_loader(name).astype(np.float32) * np.float32(1 / 255)
    assert np.array_equal(image.pixels, expected)
    assert name in DEFAULT_TEST_IMAGES


def test_training_split_is_unchanged_by_the_added_held_out_photos():
    """The zoo recipes train on the default split's train images: exactly the ten of the shipped checkpoints."""
    from ddr_eval.data.patches import split_images

    train, test = split_images(load_embedded(), test_names=DEFAULT_TEST_IMAGES)
    assert [image.name for image in train] == ["astronaut", "coffee", "rocket", "retina", "hubble_deep_field",
                                               "camera", "grass", "brick", "moon", "clock"]
    assert len(test) >= 8


def test_coins_values_are_scaled_uint8():
    from skimage import data

    (coins,) = load_embedded(["coins"])
    np.testing.assert_allclose(coins.pixels[..., 0], data.coins() / 255.0, atol=1e-6)


def test_embedded_set_excludes_duplicates_and_defaults_are_members():
    names = [entry.name for entry in EMBEDDED_IMAGES]
    assert len(names) == len(set(names))
    assert "cat" not in names  # same photograph as chelsea
    assert set(DEFAULT_TEST_IMAGES) <= set(names)


def test_unknown_embedded_name_lists_valid_ones():
    with pytest.raises(UserError, match="nope.*astronaut"):
        load_embedded(["nope"])


def test_load_images_dispatches_embedded_and_folder(tmp_path):
    assert [image.name for image in load_images("embedded", names=["clock"])] == ["clock"]
    assert [image.name for image in load_images("", names=["coins"])] == ["coins"]
    PILImage.new("RGB", (4, 4)).save(tmp_path / "a.png")
    assert [image.name for image in load_images(tmp_path)] == ["a.png"]
    with pytest.raises(UserError, match="'b.png'"):
        load_images(tmp_path, names=["b.png"])


# --- folder loader ------------------------------------------------------------------------------


def test_rgb_8bit_png_round_trips(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "rgb.png")
    (image,) = load_folder(tmp_path)
    assert image.name == "rgb.png" and image.pixels.dtype == np.float32
    np.testing.assert_allclose(image.pixels, rgb / 255.0, atol=1e-7)


def test_grey_16bit_png_is_scaled_by_65535_and_replicated(tmp_path):
    grey = np.array([[0, 1, 32768], [40000, 65534, 65535]], dtype=np.uint16)
    PILImage.fromarray(grey).save(tmp_path / "deep.png")
    (image,) = load_folder(tmp_path)
    assert image.pixels.shape == (2, 3, 3)
    for channel in range(3):
        np.testing.assert_allclose(image.pixels[..., channel], grey / 65535.0, rtol=1e-6)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 128)  # half-transparent red
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[1, 0] = (0, 0, 0, 0)  # fully transparent
    PILImage.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    (image,) = load_folder(tmp_path)
    alpha = 128 / 255
    np.testing.assert_allclose(image.pixels[0, 0], [1.0, 1 - alpha, 1 - alpha], atol=1e-6)
    np.testing.assert_allclose(image.pixels[0, 1], [0.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(image.pixels[1, 0], [1.0, 1.0, 1.0], atol=1e-6)


def test_palette_image_becomes_rgb(tmp_path):
    palette_image = PILImage.new("P", (3, 1))
    palette_image.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    palette_image.putdata([0, 1, 2])
    palette_image.save(tmp_path / "pal.png")
    (image,) = load_folder(tmp_path)
    np.testing.assert_allclose(image.pixels[0] * 255, [[255, 0, 0], [0, 255, 0], [10, 20, 30]], atol=1e-4)


def test_cmyk_tiff_becomes_rgb(tmp_path):
    PILImage.new("CMYK", (2, 2), (0, 255, 0, 0)).save(tmp_path / "cmyk.tif")  # full magenta
    (image,) = load_folder(tmp_path)
    np.testing.assert_allclose(image.pixels[0, 0], [1.0, 0.0, 1.0], atol=1e-6)


def test_float_tiff_is_clipped(tmp_path):
    values = np.array([[-0.5, 0.25], [0.75, 1.5]], dtype=np.float32)
    PILImage.fromarray(values).save(tmp_path / "float.TIFF")
    (image,) = load_folder(tmp_path)
    np.testing.assert_allclose(image.pixels[..., 1], np.clip(values, 0, 1))


def test_exif_orientation_is_applied(tmp_path):
    exif = PILImage.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    PILImage.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / "photo.JPG", exif=exif)
    (image,) = load_folder(tmp_path)
    assert image.pixels.shape == (40, 20, 3)


def test_folder_is_sorted_and_ignores_unsupported_and_hidden_files(tmp_path):
    for name in ["b.bmp", "a.jpeg", "c.png"]:
        PILImage.new("RGB", (3, 3)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    PILImage.new("RGB", (3, 3)).save(tmp_path / "anim.gif")
    (tmp_path / "._c.png").write_bytes(b"macOS resource fork")
    (tmp_path / "sub").mkdir()
    PILImage.new("RGB", (3, 3)).save(tmp_path / "sub" / "d.png")
    assert [image.name for image in load_folder(tmp_path)] == ["a.jpeg", "b.bmp", "c.png"]
    recursive_names = [image.name for image in load_folder(tmp_path, recursive=True)]
    assert recursive_names == ["a.jpeg", "b.bmp", "c.png", "sub/d.png"]


def test_corrupt_file_names_the_file(tmp_path):
    PILImage.new("RGB", (3, 3)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(UserError, match="broken.png"):
        load_folder(tmp_path)


def test_truncated_file_names_the_file(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    PILImage.fromarray(noise).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "whole.png").unlink()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.png"):
        load_folder(tmp_path)


def test_empty_missing_and_non_directory_folders(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="empty image folder.*png"):
        load_folder(tmp_path)
    with pytest.raises(UserError, match="not found"):
        load_folder(tmp_path / "missing")
    with pytest.raises(UserError, match="not a directory"):
        load_folder(tmp_path / "readme.txt")


def test_huge_image_is_refused_with_its_size(tmp_path):
    PILImage.new("RGB", (30, 20)).save(tmp_path / "big.png")
    with pytest.raises(UserError, match=r"huge image .*big.png \(30x20\).*downscale"):
        load_folder(tmp_path, max_pixels=599)
    assert load_folder(tmp_path, max_pixels=600)[0].pixels.shape == (20, 30, 3)


def test_pillow_decompression_bomb_becomes_user_error(tmp_path, monkeypatch):
    PILImage.new("RGB", (30, 20)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # Pillow errors above 2x this
    with pytest.raises(UserError, match="huge image .*bomb.png"):
        load_folder(tmp_path)


# --- splitting ----------------------------------------------------------------------------------


def _synthetic_images(count: int, size: int = 32) -> list[Image]:
    rng = np.random.default_rng(123)
    return [Image(f"img{i}", rng.random((size, size + i, 3), dtype=np.float32)) for i in range(count)]


def test_explicit_split_is_content_disjoint_and_keeps_order():
    images = _synthetic_images(6)
    train, test = split_images(images, test_names=["img4", "img1"])
    assert [image.name for image in test] == ["img1", "img4"]
    assert [image.name for image in train] == ["img0", "img2", "img3", "img5"]


def test_seeded_split_is_disjoint_complete_and_reproducible():
    images = _synthetic_images(10)
    train, test = split_images(images, test_fraction=0.3, seed=5)
    assert len(test) == 3
    assert {i.name for i in train}.isdisjoint({i.name for i in test})
    assert {i.name for i in train} | {i.name for i in test} == {i.name for i in images}
    assert [i.name for i in split_images(images, test_fraction=0.3, seed=5)[1]] == [i.name for i in test]
    splits = {tuple(i.name for i in split_images(images, seed=seed)[1]) for seed in range(5)}
    assert len(splits) > 1


def test_split_errors():
    images = _synthetic_images(3)
    with pytest.raises(UserError, match="'imgX'"):
        split_images(images, test_names=["imgX"])
    with pytest.raises(UserError, match="nothing is left to train"):
        split_images(images, test_names=["img0", "img1", "img2"])
    with pytest.raises(UserError, match="test_fraction"):
        split_images(images, test_fraction=1.0)


# --- patches ------------------------------------------------------------------------------------


def test_patches_are_deterministic_and_seed_dependent():
    images = _synthetic_images(3, size=40)
    first = sample_patches(images, patch_size=8, patches_per_image=5, seed=7)
    again = sample_patches(images, patch_size=8, patches_per_image=5, seed=7)
    other = sample_patches(images, patch_size=8, patches_per_image=5, seed=8)
    assert isinstance(first, PatchSet) and len(first) == 15
    assert first.hr.shape == (15, 8, 8, 3) and first.hr.dtype == np.float32
    np.testing.assert_array_equal(first.hr, again.hr)
    assert not np.array_equal(first.hr, other.hr)
    np.testing.assert_array_equal(first.image_index, np.repeat([0, 1, 2], 5))
    np.testing.assert_array_equal(first.patch_index, np.tile(np.arange(5), 3))
    assert first.image_names == ("img0", "img1", "img2")


def test_each_patch_is_a_crop_of_its_image():
    images = _synthetic_images(2, size=24)
    patches = sample_patches(images, patch_size=6, patches_per_image=4, seed=0)
    for hr, index in zip(patches.hr, patches.image_index):
        windows = np.lib.stride_tricks.sliding_window_view(images[index].pixels, (6, 6, 3))
        assert np.any(np.all(windows == hr, axis=(-3, -2, -1)))


def test_patches_of_an_image_do_not_depend_on_the_other_images():
    images = _synthetic_images(3, size=40)
    together = sample_patches(images, patch_size=8, patches_per_image=4, seed=3)
    alone = sample_patches(images[2:], patch_size=8, patches_per_image=4, seed=3)
    np.testing.assert_array_equal(together.subset(together.image_index == 2).hr, alone.hr)


def test_grid_patches_tile_without_overlap():
    pixels = np.arange(10 * 13 * 3, dtype=np.float32).reshape(10, 13, 3) / 1000
    patches = sample_patches([Image("g", pixels)], patch_size=4, patches_per_image=100, seed=0, grid=True)
    # 2 x 3 tiles, centred: top margin 1, left margin 0 (13 - 12 = 1, floor(1/2) = 0)
    assert len(patches) == 6
    np.testing.assert_array_equal(patches.hr[0], pixels[1:5, 0:4])
    np.testing.assert_array_equal(patches.hr[5], pixels[5:9, 8:12])
    capped = sample_patches([Image("g", pixels)], patch_size=4, patches_per_image=2, seed=0, grid=True)
    np.testing.assert_array_equal(capped.hr, patches.hr[[0, 5]])


def test_subset_keeps_labels_meaningful():
    patches = sample_patches(_synthetic_images(2, size=20), patch_size=4, patches_per_image=3, seed=0)
    subset = patches.subset(patches.image_index == 1)
    assert len(subset) == 3 and subset.image_names == patches.image_names
    np.testing.assert_array_equal(subset.hr, patches.hr[3:])


def test_patch_larger_than_image_names_the_image_and_sizes():
    images = [Image("tiny", np.zeros((10, 12, 3), np.float32))]
    with pytest.raises(UserError, match=r"'tiny' \(12x10\).*16x16"):
        sample_patches(images, patch_size=16, patches_per_image=1, seed=0)


def test_patch_size_must_be_a_multiple_of_the_scale():
    images = _synthetic_images(1, size=40)
    with pytest.raises(UserError, match="patch_size 10 is not a multiple of the scale 4"):
        sample_patches(images, patch_size=10, patches_per_image=1, seed=0, multiple_of=4)
    assert len(sample_patches(images, patch_size=12, patches_per_image=1, seed=0, multiple_of=4)) == 1
    with pytest.raises(UserError, match="patches_per_image"):
        sample_patches(images, patch_size=12, patches_per_image=0, seed=0)
