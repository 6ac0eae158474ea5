"""Tests for kerascnn.data.augmentation presets."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.data import (Augmentation, augmentation,
                           list_augmentation_presets)

NO_GEOMETRY = dict(rotation=0, translation=0, zoom=0, contrast=0,
                   brightness=0)


def _layer_types(block):
    return [type(layer).__name__ for layer in block.layers]


def test_presets_and_layers():
    presets = list_augmentation_presets()
    assert sorted(presets) == ["digits", "natural", "none"]
    assert presets["digits"]["flip"] is None
    assert _layer_types(augmentation("digits")) == [
        "RandomRotation", "RandomTranslation", "RandomZoom"]
    assert _layer_types(augmentation("natural")) == [
        "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
        "RandomContrast", "RandomBrightness"]
    assert _layer_types(augmentation("none")) == ["Identity"]
    assert augmentation("digits").name == "augmentation_digits"
    # Overrides change or remove layers.
    block = augmentation("natural", rotation=0, zoom=0.3, contrast=0,
                         brightness=0, flip="vertical")
    assert _layer_types(block) == ["RandomFlip", "RandomTranslation",
                                   "RandomZoom"]
    assert block.get_layer("flip").mode == "vertical"
    assert block.get_layer("zoom").height_factor == 0.3


@pytest.mark.parametrize("preset", ["digits", "natural", "none"])
def test_identity_at_inference_random_in_training(preset):
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)) \
        .astype("float32")
    block = augmentation(preset, seed=5)
    np.testing.assert_array_equal(block(x, training=False), x)
    np.testing.assert_array_equal(block.predict(x, verbose=0), x)
    trained = np.asarray(block(x, training=True))
    assert trained.shape == x.shape
    if preset == "none":
        np.testing.assert_array_equal(trained, x)
    else:
        assert np.abs(trained - x).mean() > 1.0


def test_digits_never_mirrors_a_digit(mnist5k):
    images, labels = mnist5k
    seven = images[np.flatnonzero(labels == 7)[0]].astype("float32")
    mirrored = seven[:, ::-1]
    batch = np.repeat(seven[None], 32, axis=0)
    out = np.asarray(augmentation("digits", seed=0)(batch, training=True))

    def corr(a, b):
        # Best correlation over shifts of up to 4 pixels (undoes translation).
        pad = np.pad(b[..., 0], 4)
        return max(np.corrcoef(a.ravel(), pad[i:i + 28, j:j + 28].ravel())[0, 1]
                   for i in range(9) for j in range(9))

    assert not np.allclose(out, batch)  # it did augment
    for image in out:
        assert corr(image, seven) > corr(image, mirrored) + 0.1
    # Flips are refused outright for digits.
    with pytest.raises(ValueError, match="Received: flip='horizontal'"):
        augmentation("digits", flip="horizontal")


def test_natural_flip_mirrors_some_images():
    x = np.random.default_rng(1).uniform(0, 255, (1, 8, 8, 1)) \
        .astype("float32")
    batch = np.repeat(x, 16, axis=0)
    out = np.asarray(augmentation("natural", seed=3, **NO_GEOMETRY)(
        batch, training=True))
    same = [np.allclose(o, x[0]) for o in out]
    flipped = [np.allclose(o, x[0][:, ::-1]) for o in out]
    assert all(s or f for s, f in zip(same, flipped))
    assert any(same) and any(flipped)


def test_seed_makes_it_reproducible():
    x = np.random.default_rng(2).uniform(0, 255, (3, 12, 12, 1)) \
        .astype("float32")
    a = np.asarray(augmentation("digits", seed=11)(x, training=True))
    b = np.asarray(augmentation("digits", seed=11)(x, training=True))
    c = np.asarray(augmentation("digits", seed=12)(x, training=True))
    np.testing.assert_allclose(a, b)
    assert not np.allclose(a, c)


def test_brightness_respects_value_range():
    x = np.full((8, 4, 4, 1), 0.5, "float32")
    block = augmentation("natural", seed=0, value_range=(0, 1), flip=None,
                         rotation=0, translation=0, zoom=0, contrast=0,
                         brightness=0.5)
    out = np.asarray(block(x, training=True))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.ptp(out[:, 0, 0, 0]) > 0.05  # per-image brightness shifts


def test_saved_and_exported_inside_a_model(tmp_path):
    inputs = keras.Input((12, 12, 3))
    x = augmentation("natural", seed=1)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(3).uniform(0, 255, (2, 12, 12, 3)) \
        .astype("float32")
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "aug.keras")
    reloaded = keras.saving.load_model(tmp_path / "aug.keras")
    np.testing.assert_allclose(reloaded.predict(data, verbose=0), expected,
                               rtol=1e-5, atol=1e-5)
    block = reloaded.get_layer("augmentation_natural")
    assert isinstance(block, Augmentation)
    assert _layer_types(block)[0] == "RandomFlip"
    # In training mode the model does augment.
    assert not np.allclose(model(data, training=True), expected, atol=1e-3)
    assert block.get_layer("brightness").value_range == [0.0, 255.0] or \
        tuple(block.get_layer("brightness").value_range) == (0.0, 255.0)
    export_dir = os.path.join(tmp_path, "aug_export")
    model.export(export_dir, verbose=False)
    # Keep a reference: with the random layers' seed variables, a temporary
    # `tf.saved_model.load(path).serve(x)` is garbage collected mid-call.
    loaded = tf.saved_model.load(export_dir)
    served = loaded.serve(tf.constant(data))
    # A plain keras.Sequential of Random* layers keeps augmenting here.
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(loaded.serve(tf.constant(data)).numpy(),
                               expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "cifar"}, "Received: preset='cifar'"),
    ({"seed": -1}, "Received: seed=-1"),
    ({"shear": 0.1}, "Received: overrides='shear'"),
    ({"preset": "natural", "flip": "diagonal"}, "Received: flip='diagonal'"),
    ({"rotation": 0.7}, "Received: rotation=0.7"),
    ({"zoom": 1.0}, "Received: zoom=1.0"),
    ({"translation": -0.1}, "Received: translation=-0.1"),
    ({"fill_mode": "mirror"}, "Received: fill_mode='mirror'"),
    ({"value_range": (1, 0)}, r"Received: value_range=\(1, 0\)"),
])
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augmentation(**kwargs)


def test_registered_and_config_round_trip():
    assert keras.saving.get_registered_name(Augmentation) \
        == "kerascnn>Augmentation"
    block = augmentation("natural", seed=4, zoom=0.2)
    config = keras.saving.serialize_keras_object(block)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, Augmentation)
    assert _layer_types(restored) == _layer_types(block)
    assert restored.get_layer("zoom").get_config() \
        == block.get_layer("zoom").get_config()
