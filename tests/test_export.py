"""Tests for kerascnn.export: verified, atomic SavedModel export."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerascnn
from kerascnn import export
from kerascnn.export import export_model, load_export, predict_export
from kerascnn.export import saved_model as saved_model_module
from kerascnn.models import build_cnn

INPUT_SHAPE = (8, 8, 1)


@pytest.fixture
def mirrored(two_cpu_strategy):
    """A fresh two-CPU MirroredStrategy whose collectives cannot collide.

    Every MirroredStrategy numbers its collective ops from the same keys, so
    a second strategy in one process reuses the first one's instance keys
    and TensorFlow aborts with "Shape mismatch in the collective instance"
    (tensorflow/tensorflow#62790). TensorFlow's own tests bump this base.
    """
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _model(seed_images=None, augmentation=None):
    images = seed_images if seed_images is not None else _images()
    return build_cnn(INPUT_SHAPE, 3, depth=1, filters=2, dense_units=4,
                     normalization="group", normalizer=images,
                     augmentation=augmentation)


def _images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n,) + INPUT_SHAPE).astype("float32")


def _tree_digest(path):
    """Sha256 of every file (relative path + bytes) under `path`."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def test_public_api():
    assert sorted(export.__all__) == sorted(
        ["export_model", "load_export", "predict_export", "ExportedModel",
         "check_export_target", "check_writable", "export_or_fallback",
         "save_fallback", "is_export", "ExportFailedError",
         "NotAnExportError"])
    assert kerascnn.export_model is export_model


@pytest.fixture(scope="module")
def small_model():
    """A model for the argument checks, which must fail before any work."""
    return _model()


@pytest.fixture
def exported(tmp_path):
    """One export of a model with normalizer + augmentation + group norm."""
    images = _images()
    augmentation = keras.Sequential(
        [keras.layers.RandomFlip("horizontal"),
         keras.layers.RandomRotation(0.1)], name="aug")
    model = _model(images, augmentation)
    path = export_model(
        model, "digits_v1", directory=tmp_path / "exports", sample=images,
        class_names=["a", "b", "c"],
        metadata={"metrics": {"accuracy": np.float32(0.75)}, "note": "x"})
    return model, images, path


def test_round_trip_and_metadata(exported, tmp_path):
    model, images, path = exported
    assert path == os.path.join(tmp_path / "exports", "digits_v1")
    assert sorted(os.listdir(path)) == [
        "metadata.json", "model.keras", "saved_model"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask
    # Nothing else is left in the directory (no temporary folders).
    assert os.listdir(tmp_path / "exports") == ["digits_v1"]
    expected = model.predict(images, verbose=0)
    served = tf.saved_model.load(os.path.join(path, "saved_model"))
    np.testing.assert_allclose(np.asarray(served.serve(images)), expected,
                               atol=1e-5)
    # Raw uint8 pixels go through predict_export (cast to the input dtype).
    np.testing.assert_allclose(
        predict_export(path, images.astype("uint8"), batch_size=4), expected,
        atol=1e-5)
    loaded = load_export(path)
    np.testing.assert_allclose(loaded.serve(images), expected, atol=1e-5)
    np.testing.assert_allclose(
        loaded.keras_model().predict(images, verbose=0), expected, atol=1e-6)
    # Channel-less single-channel images are accepted too.
    np.testing.assert_allclose(loaded.serve(images[..., 0]), expected,
                               atol=1e-5)

    with open(os.path.join(path, "metadata.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    assert metadata == loaded.metadata
    assert metadata["class_names"] == ["a", "b", "c"]
    assert loaded.class_names == ["a", "b", "c"]
    assert metadata["num_classes"] == 3
    assert metadata["input_shape"] == [8, 8, 1]
    assert metadata["input_dtype"] == "float32"
    assert metadata["metrics"] == {"accuracy": 0.75}
    assert metadata["note"] == "x"
    assert metadata["name"] == "digits_v1"
    assert metadata["versions"]["keras"] == keras.__version__
    assert metadata["versions"]["tensorflow"] == tf.__version__
    assert metadata["versions"]["kerascnn"] == kerascnn.__version__
    assert metadata["versions"]["python"].count(".") == 2
    assert metadata["created"].endswith("+00:00")


def test_serve_signature_has_none_batch(exported):
    _, _, path = exported
    served = tf.saved_model.load(os.path.join(path, "saved_model"))
    spec = served.serve.input_signature[0]
    assert spec.shape.as_list() == [None, 8, 8, 1]
    assert spec.dtype == tf.float32
    # A batch size never seen during export.
    assert np.asarray(served.serve(np.zeros((1, 8, 8, 1), "float32"))).shape \
        == (1, 3)


def test_refuses_to_overwrite(exported, monkeypatch):
    model, images, path = exported
    before = _tree_digest(path)

    def must_not_run(*args, **kwargs):
        raise AssertionError("work started before the existence check")

    monkeypatch.setattr(saved_model_module, "_write_saved_model",
                        must_not_run)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_model(model, "digits_v1", directory=os.path.dirname(path))
    assert _tree_digest(path) == before
    assert os.listdir(os.path.dirname(path)) == ["digits_v1"]


def test_overwrite_replaces(exported):
    _, images, path = exported
    old_created = load_export(path).metadata
    new_model = build_cnn(INPUT_SHAPE, 3, depth=1, filters=3, dense_units=5,
                          normalization="none")
    result = export_model(new_model, "digits_v1",
                          directory=os.path.dirname(path), overwrite=True,
                          sample=images, metadata={"metrics": {"loss": 1.5}})
    assert result == path
    loaded = load_export(path)
    assert loaded.metadata["metrics"] == {"loss": 1.5}
    assert loaded.metadata["class_names"] is None
    assert old_created["class_names"] == ["a", "b", "c"]
    np.testing.assert_allclose(loaded.serve(images),
                               new_model.predict(images, verbose=0), atol=1e-5)
    # No old or temporary folder remains.
    assert os.listdir(os.path.dirname(path)) == ["digits_v1"]


@pytest.mark.parametrize("broken", ["_serve_outputs", "_keras_outputs"])
def test_verification_failure_keeps_old_export(exported, monkeypatch,
                                               broken):
    model, images, path = exported
    before = _tree_digest(path)
    original = getattr(saved_model_module, broken)

    def wrong_outputs(where, x):
        return original(where, x) + 1e-3

    monkeypatch.setattr(saved_model_module, broken, wrong_outputs)
    with pytest.raises(RuntimeError, match="verification failed"):
        export_model(model, "digits_v1", directory=os.path.dirname(path),
                     overwrite=True, sample=images)
    assert _tree_digest(path) == before
    assert os.listdir(os.path.dirname(path)) == ["digits_v1"]
    # A new name: nothing at all is left behind.
    with pytest.raises(RuntimeError, match="max abs difference 0.001"):
        export_model(model, "other", directory=os.path.dirname(path),
                     sample=images)
    assert os.listdir(os.path.dirname(path)) == ["digits_v1"]


def test_error_during_write_cleans_up(tmp_path, monkeypatch):
    model = _model()

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(saved_model_module, "_write_saved_model", disk_full)
    with pytest.raises(OSError, match="No space"):
        export_model(model, "m", directory=tmp_path)
    assert os.listdir(tmp_path) == []


def test_default_sample_is_deterministic(tmp_path, monkeypatch):
    seen = []
    original = saved_model_module._serve_outputs

    def spy(where, x):
        seen.append(np.array(x))
        return original(where, x)

    monkeypatch.setattr(saved_model_module, "_serve_outputs", spy)
    model = _model()
    export_model(model, "a", directory=tmp_path)
    export_model(model, "b", directory=tmp_path)
    assert seen[0].shape == (4, 8, 8, 1) and seen[0].dtype == np.float32
    assert seen[0].min() >= 0 and seen[0].max() <= 255 and seen[0].std() > 10
    np.testing.assert_array_equal(seen[0], seen[1])


@pytest.mark.parametrize(
    "name", ["", "../escape", "a/b", "a\\b", "..", ".hidden", "a..b", 7, None,
             "has space"])
def test_bad_names_rejected_before_writing(tmp_path, name, small_model):
    directory = tmp_path / "exports"
    with pytest.raises(ValueError, match="Received: name="):
        export_model(small_model, name, directory=directory)
    assert not directory.exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sample=np.zeros((2, 9, 8, 1))),
         "Received: sample='array of shape \\(2, 9, 8, 1\\)'"),
        (dict(sample=np.full((2, 8, 8, 1), np.nan)), "Received: 128 NaN"),
        (dict(class_names=["a", "b"]), "Received: class_names=\\['a', 'b'\\]"),
        (dict(class_names="abc"), "Received: class_names='abc'"),
        (dict(class_names=["a", "a", "b"]), "Received: class_names="),
        (dict(metadata=["metrics"]), "Received: metadata=\\['metrics'\\]"),
        (dict(metadata={"name": "x"}), "Received: metadata=\"dict with keys"),
        (dict(metadata={"f": object()}), "Received: metadata with a value"),
        (dict(overwrite="yes"), "Received: overwrite='yes'"),
        (dict(atol=0), "Received: atol=0"),
        (dict(directory=None), "Received: directory=None"),
    ],
)
def test_bad_arguments_rejected_before_writing(tmp_path, kwargs, match,
                                               small_model):
    kwargs.setdefault("directory", tmp_path / "exports")
    with pytest.raises(ValueError, match=match):
        export_model(small_model, "m", **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_models_rejected(tmp_path):
    with pytest.raises(ValueError, match="Received: model='model'"):
        export_model("model", "m", directory=tmp_path)
    inputs = keras.Input((None, None, 3))
    flexible = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(
        inputs))
    with pytest.raises(ValueError, match="input shape \\(None, None, None"):
        export_model(flexible, "m", directory=tmp_path)
    assert os.listdir(tmp_path) == []


def test_directory_that_is_a_file(tmp_path, small_model):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="Received: directory="):
        export_model(small_model, "m", directory=target)


def test_load_and_predict_errors(tmp_path, exported):
    _, _, path = exported
    with pytest.raises(ValueError, match="Received: path="):
        load_export(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="export folder"):
        load_export(tmp_path / "empty")
    with pytest.raises(ValueError, match="Received: images='array of shape"):
        predict_export(path, np.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        predict_export(path, np.zeros((2, 8, 8, 1)), batch_size=0)


def test_export_model_built_under_strategy(tmp_path, mirrored):
    images = _images()
    model = build_cnn(INPUT_SHAPE, 3, depth=1, filters=2, dense_units=4,
                      normalizer=images, batch_size=8,
                      strategy=mirrored, verbose=False)
    with mirrored.scope():
        model.compile(optimizer="adam",
                      loss="sparse_categorical_crossentropy")
    model.fit(images, np.arange(6) % 3, batch_size=6, epochs=1, verbose=0)
    path = export_model(model, "mirrored", directory=tmp_path, sample=images)
    np.testing.assert_allclose(predict_export(path, images),
                               model.predict(images, verbose=0), atol=1e-5)
