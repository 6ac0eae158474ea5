"""`kerascnn predict` on broken exports and awkward images: one line each.

Each case of issue 12 (10 and the hints) is reproduced on a tiny export: a
corrupt `saved_model.pb`, a `metadata.json` without `input_shape` or with
broken JSON, a 15000x15000 image, a directory given as image, a 16-bit PNG.
"""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from kerascnn.cli import main
from kerascnn.cli import predict
from kerascnn.export import export_model
from kerascnn.models import build_cnn

INPUT_SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def export_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6,) + INPUT_SHAPE).astype("float32")
    model = build_cnn(INPUT_SHAPE, 3, depth=1, filters=2, dense_units=4,
                      normalization="none", normalizer=images)
    return export_model(model, "m", directory=root,
                        class_names=["a", "b", "c"])


@pytest.fixture
def broken_export(export_path, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(export_path, copy)
    return copy


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(
        path)
    return str(path)


def _one_line_error(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, captured.out, err)
    assert len(err.splitlines()) == 1, err
    assert err.startswith("kerascnn predict: error:")
    assert "Traceback" not in err
    return err


def test_corrupt_saved_model(broken_export, image_file, capsys):
    (broken_export / "saved_model" / "saved_model.pb").write_bytes(
        b"\x08\x01garbage that is no protocol buffer\xff\xfe")
    err = _one_line_error(capsys, ["predict", "--model", str(broken_export),
                                   image_file])
    assert "saved_model" in err and "unreadable" in err
    assert "export the model again" in err


def test_truncated_saved_model(broken_export, image_file, capsys):
    pb = broken_export / "saved_model" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:100])
    err = _one_line_error(capsys, ["predict", "--model", str(broken_export),
                                   image_file])
    assert "saved_model" in err


def test_metadata_without_input_shape(broken_export, image_file, capsys):
    metadata_path = broken_export / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["input_shape"]
    metadata_path.write_text(json.dumps(metadata))
    err = _one_line_error(capsys, ["predict", "--model", str(broken_export),
                                   image_file])
    assert str(metadata_path) in err and "no 'input_shape' key" in err


@pytest.mark.parametrize("content, match", [
    ('{"input_shape": [8, 8', "not valid JSON"),
    ('[1, 2]', "a JSON list, not an object"),
    ('{"input_shape": [8, "8", 1]}', "'input_shape' must be"),
    ('{"input_shape": [8, 8, 1], "input_dtype": "pixels"}',
     "'input_dtype' is not a dtype"),
])
def test_broken_metadata_names_the_file(broken_export, image_file, capsys,
                                        content, match):
    metadata_path = broken_export / "metadata.json"
    metadata_path.write_text(content)
    err = _one_line_error(capsys, ["predict", "--model", str(broken_export),
                                   image_file])
    assert str(metadata_path) in err and match in err


def test_decompression_bomb(export_path, tmp_path, capsys):
    path = tmp_path / "huge.png"
    Image.new("1", (15000, 15000)).save(path)  # 225 Mpixels, a small file
    err = _one_line_error(capsys, ["predict", "--model", export_path,
                                   str(path)])
    assert "huge.png" in err and "decompression" in err.lower()


def test_unreadable_image(export_path, tmp_path, capsys):
    path = tmp_path / "fake.png"
    path.write_bytes(b"not an image")
    err = _one_line_error(capsys, ["predict", "--model", export_path,
                                   str(path)])
    assert "fake.png" in err


def test_directory_predicts_every_image(export_path, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in ("b.png", "a.jpg", "sub/c.bmp"):
        Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8)).save(
            folder / name)
    (folder / "notes.txt").write_text("not an image")
    capsys.readouterr()
    assert main(["predict", "--model", export_path, str(folder)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        str(folder / "a.jpg"), str(folder / "b.png"),
        str(folder / "sub" / "c.bmp")]
    assert all(line.split(": ")[1].split(" ")[0] in "abc" for line in lines)


def test_directory_without_images(export_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = _one_line_error(capsys, ["predict", "--model", export_path,
                                   str(tmp_path / "empty")])
    assert "a directory without images" in err


def test_sixteen_bit_png_is_scaled_like_training(export_path, tmp_path,
                                                 capsys):
    values = np.linspace(0, 65535, 64).reshape(8, 8).astype(np.uint16)
    wide = tmp_path / "wide.png"
    Image.fromarray(values).save(wide)
    with Image.open(wide) as image:
        assert image.mode.startswith("I")
    array = predict.load_image(str(wide), [8, 8, 1])
    # Scaled to 0..255 (65535 -> 255), not clipped to 255 everywhere.
    np.testing.assert_allclose(array[..., 0], values / 257.0, atol=0.51)
    assert array.min() == 0 and array.max() == 255
    narrow = tmp_path / "narrow.png"
    Image.fromarray(np.round(values / 257.0).astype(np.uint8)).save(narrow)
    capsys.readouterr()
    assert main(["predict", "--model", export_path, "--top", "3",
                 str(wide), str(narrow)]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first.split(": ")[1] == second.split(": ")[1]


def test_image_resized_and_converted(export_path, tmp_path):
    path = tmp_path / "rgb.png"
    Image.new("RGB", (16, 16), (255, 255, 255)).save(path)
    array = predict.load_image(str(path), [8, 8, 1])
    assert array.shape == (8, 8, 1) and array.dtype == np.float32
    np.testing.assert_allclose(array, 255.0, atol=0.5)
    assert os.path.isfile(path)


def test_pillow_fallback_decodes_like_training(tmp_path, monkeypatch):
    # Used when kerascnn.datasets.files.read_image is unavailable.
    values = np.linspace(0, 65535, 64).reshape(8, 8).astype(np.uint16)
    wide = tmp_path / "wide.png"
    Image.fromarray(values).save(wide)
    array = predict._load_with_pillow(str(wide), 8, 8, 1)
    np.testing.assert_allclose(array[..., 0], values / 257.0, atol=0.51)
    rgb = predict._load_with_pillow(str(wide), 4, 4, 3)
    assert rgb.shape == (4, 4, 3) and rgb.max() > 200
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(ValueError, match="wide.png.*decompression-bomb"):
        predict._load_with_pillow(str(wide), 8, 8, 1)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.png"):
        predict._load_with_pillow(str(tmp_path / "bad.png"), 8, 8, 1)
