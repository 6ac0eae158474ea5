"""`kerascnn transfer` smoke tests (a tiny source model, no downloads)."""

import json
import os

import keras

from kerascnn.cli import main


def _folder(root, size=32, per_class=3):
    """A tiny class folder of RGB PNGs (3 classes)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        os.makedirs(root / f"class{c}")
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return str(root)


def _source_model(path):
    from kerascnn import datasets

    images, labels = datasets.load_digits()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images, labels, epochs=1, batch_size=64, verbose=0)
    model.save(path)


def test_cli_transfers_and_exports(tmp_path, capsys):
    source = str(tmp_path / "source.keras")
    _source_model(source)
    code = main(["transfer", "--data", "digits", "--backbone", source,
                 "--epochs", "1", "--head-epochs", "15",
                 "--export", "digits_transfer",
                 "--export-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Cell: similar-small" in out and "Why:" in out
    assert "images per class" in out and "cosine similarity" in out
    assert "Test accuracy:" in out
    export = tmp_path / "digits_transfer"
    metadata = json.loads((export / "metadata.json").read_text())
    assert os.path.isdir(export / "saved_model")
    accuracy = float(out.split("Test accuracy: ")[1].split()[0])
    assert accuracy > 0.5
    assert str(metadata).count("similar-small") >= 1


def test_cli_lists_backbones(capsys):
    assert main(["transfer", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "resnet50" in names and "convnexttiny" in names


def test_cli_unknown_backbone_is_one_line(tmp_path, capsys):
    code = main(["transfer", "--data", "digits", "--backbone", "resnet5",
                 "--weights", "none", "--export-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Received: name='resnet5'" in err and "resnet50" in err


def test_cli_input_below_minimum(tmp_path, capsys):
    code = main(["transfer", "--data", "digits", "--backbone", "mobilenetv2",
                 "--weights", "none", "--export-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "at least (32, 32)" in err
    assert not os.path.exists(tmp_path / "transfer_model")


def test_cli_test_split_zero_trains_and_exports_without_test(tmp_path,
                                                             capsys):
    source = str(tmp_path / "source.keras")
    _source_model(source)
    code = main(["transfer", "--data", "digits", "--backbone", source,
                 "--test-split", "0", "--augment", "none",
                 "--export", "no_test", "--export-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Test accuracy: not measured (--test-split 0)" in out
    assert os.path.isdir(tmp_path / "no_test" / "saved_model")


def test_cli_imagenet_without_network_is_one_clear_line(tmp_path, capsys,
                                                       monkeypatch):
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com"
                        "/x.h5: None -- [Errno -3] Temporary failure in name "
                        "resolution")

    monkeypatch.setattr(file_utils, "get_file", no_network)
    folder = _folder(tmp_path / "photos")
    code = main(["transfer", "--data", folder, "--backbone", "mobilenetv2",
                 "--test-split", "0", "--export-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "could not be downloaded" in err
    assert "--weights FILE" in err and "--weights none" in err
    assert "Traceback" not in err
    assert not os.path.exists(tmp_path / "transfer_model")
