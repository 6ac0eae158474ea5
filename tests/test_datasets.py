"""Tests for kerascnn.datasets: embedded data, folder loading, `load`."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from kerascnn import datasets


def test_all_is_pinned():
    assert sorted(datasets.__all__) == sorted([
        "DATASETS", "IMAGE_EXTENSIONS", "load", "load_digits",
        "load_directory", "load_mnist5k", "COLOR_MODES", "ScanResult",
        "check_dataset_name", "decode_image", "list_directory",
        "read_image", "scan_files", "SUITED_AUGMENTATION",
        "suited_augmentation"])
    assert datasets.DATASETS == ("mnist5k", "digits")
    # Every built-in dataset says which augmentation `augment="auto"` uses.
    assert set(datasets.SUITED_AUGMENTATION) == set(datasets.DATASETS)


def test_mnist5k(mnist5k):
    images, labels = mnist5k
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    assert images.max() == 255 and images.min() == 0


def test_digits_scaled_to_uint8():
    from sklearn.datasets import load_digits as sk_digits

    images, labels = datasets.load_digits()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    raw = sk_digits().images
    # 16 -> 255, 8 -> round(127.5) = 128 (banker's rounding: 128), 0 -> 0.
    np.testing.assert_array_equal(images[..., 0][raw == 16], 255)
    np.testing.assert_array_equal(images[..., 0][raw == 0], 0)
    np.testing.assert_array_equal(images[..., 0][raw == 4], 64)  # 63.75
    np.testing.assert_array_equal(labels, sk_digits().target)


@pytest.mark.parametrize("name", ["mnist5k", "digits", "MNIST5K"])
def test_load_named(name):
    images, labels, class_names = datasets.load(name)
    assert class_names == [str(i) for i in range(10)]
    assert len(images) == len(labels) and images.ndim == 4


def test_load_arrays_tuple():
    x = np.zeros((4, 5, 5), np.float32)
    images, labels, names = datasets.load((x, [0, 1, 2, 1]))
    assert images.shape == (4, 5, 5, 1)
    assert names == ["0", "1", "2"]
    _, _, names = datasets.load((x, [0, 1, 0, 1], ["cat", "dog"]))
    assert names == ["cat", "dog"]
    with pytest.raises(ValueError, match="Received: labels up to 2"):
        datasets.load((x, [0, 1, 2, 1], ["cat", "dog"]))
    with pytest.raises(ValueError, match="Received: 4 images and 3 labels"):
        datasets.load((x, [0, 1, 1]))


@pytest.mark.parametrize("bad", ["cifar10", 3, None, "/no/such/dir"])
def test_load_rejects_unknown_source(bad):
    with pytest.raises(ValueError, match="Received: source="):
        datasets.load(bad)


def test_load_rejects_kwargs_for_named():
    with pytest.raises(ValueError, match="Received: kwargs="):
        datasets.load("digits", image_size=8)


def _write(path, size=(6, 5), color=(10, 20, 30), mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, (size[1], size[0]), color).save(path)


@pytest.fixture
def folder(tmp_path):
    """Three classes, 2 + 1 + 2 PNGs of 6x5 pixels, distinct colours."""
    root = tmp_path / "imgs"
    _write(str(root / "cat" / "a.png"), color=(255, 0, 0))
    _write(str(root / "cat" / "b.png"), color=(250, 0, 0))
    _write(str(root / "dog" / "a.png"), color=(0, 255, 0))
    _write(str(root / "emu" / "x.png"), color=(0, 0, 255))
    _write(str(root / "emu" / "y.PNG"), color=(0, 0, 200))
    (root / "emu" / "notes.txt").write_text("not an image")
    return root


def test_load_directory_reads_classes(folder):
    images, labels, names = datasets.load_directory(folder)
    assert names == ["cat", "dog", "emu"]
    assert images.shape == (5, 6, 5, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(images[:, 0, 0], [
        [255, 0, 0], [250, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 200]])
    gray, _, _ = datasets.load_directory(folder, color_mode="grayscale")
    assert gray.shape == (5, 6, 5, 1)
    # ITU-R 601-2 luma as Pillow computes it: 255 * 299/1000 = 76.
    assert gray[0, 0, 0, 0] == 76
    via_load = datasets.load(str(folder), color_mode="grayscale")
    np.testing.assert_array_equal(via_load[0], gray)


def test_load_directory_corrupt_file_raises_or_skips(folder):
    bad = folder / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ValueError, match="corrupt image file .*broken.png"):
        datasets.load_directory(folder)
    with pytest.warns(UserWarning, match="broken.png"):
        images, labels, _ = datasets.load_directory(folder, on_error="skip")
    assert len(images) == 5
    np.testing.assert_array_equal(labels, [0, 0, 1, 2, 2])


def test_load_directory_sizes(folder):
    _write(str(folder / "dog" / "big.png"), size=(9, 7))
    with pytest.raises(ValueError, match="Received: image_size=None with"):
        datasets.load_directory(folder)
    images, _, _ = datasets.load_directory(folder, image_size=(4, 3))
    assert images.shape == (6, 4, 3, 3)
    # A uniform image stays uniform after resizing.
    np.testing.assert_array_equal(images[0], np.broadcast_to([255, 0, 0],
                                                             (4, 3, 3)))
    images, _, _ = datasets.load_directory(folder, image_size=8)
    assert images.shape == (6, 8, 8, 3)


def test_load_directory_bad_layouts(tmp_path):
    with pytest.raises(ValueError, match="Received: path="):
        datasets.load_directory(tmp_path / "missing")
    file_path = tmp_path / "file.png"
    _write(str(file_path))
    with pytest.raises(ValueError, match="an existing directory"):
        datasets.load_directory(file_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        datasets.load_directory(empty)
    flat = tmp_path / "flat"
    _write(str(flat / "a.png"))
    with pytest.raises(ValueError, match="no class sub-folders"):
        datasets.load_directory(flat)
    one = tmp_path / "one"
    _write(str(one / "cat" / "a.png"))
    with pytest.raises(ValueError, match="only the class folder 'cat'"):
        datasets.load_directory(one)
    (one / "dog").mkdir()
    with pytest.raises(ValueError, match="class folder 'dog' has no images"):
        datasets.load_directory(one)


def test_load_directory_all_of_a_class_corrupt(tmp_path):
    root = tmp_path / "r"
    _write(str(root / "a" / "1.png"))
    _write(str(root / "b" / "1.png"))
    _write(str(root / "c" / "1.png"))
    (root / "c" / "1.png").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"class folders \['c'\]"):
            datasets.load_directory(root, on_error="skip")


@pytest.mark.parametrize("kwargs, match", [
    ({"color_mode": "cmyk"}, "Received: color_mode='cmyk'"),
    ({"image_size": 0}, "Received: image_size="),
    ({"image_size": (4, 4, 3)}, r"Received: image_size=\(4, 4, 3\)"),
    ({"on_error": "ignore"}, "Received: on_error='ignore'"),
    ({"interpolation": "area"}, "Received: interpolation='area'"),
])
def test_load_directory_bad_arguments(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.load_directory(folder, **kwargs)
