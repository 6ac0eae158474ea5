"""BackbonePreprocessing: the numbers of each family's preprocess_input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.transfer import BackbonePreprocessing

_FAMILY_FUNCTIONS = {
    "caffe": keras.applications.resnet50.preprocess_input,
    "tf": keras.applications.mobilenet_v2.preprocess_input,
    "torch": keras.applications.densenet.preprocess_input,
    "none": keras.applications.efficientnet.preprocess_input,
}


def _pixels(shape=(2, 5, 4, 3)):
    return np.random.default_rng(0).uniform(0, 255, shape).astype("float32")


@pytest.mark.parametrize("mode", sorted(_FAMILY_FUNCTIONS))
def test_matches_keras_preprocess_input(mode):
    x = _pixels()
    expected = _FAMILY_FUNCTIONS[mode](x.copy())
    out = np.asarray(BackbonePreprocessing(mode)(x))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_caffe_by_hand():
    x = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    out = np.asarray(BackbonePreprocessing("caffe")(x))
    np.testing.assert_allclose(
        out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_grayscale_to_rgb():
    x = np.full((1, 2, 2, 1), 255.0, "float32")
    layer = BackbonePreprocessing("tf", grayscale_to_rgb=True)
    out = np.asarray(layer(x))
    assert out.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(out, 1.0)


@pytest.mark.parametrize("bad", ["bgr", "", None, 3])
def test_rejects_bad_mode(bad):
    with pytest.raises(ValueError, match="Received: mode="):
        BackbonePreprocessing(bad)


def test_rejects_bad_grayscale_flag():
    with pytest.raises(ValueError, match="Received: grayscale_to_rgb=1"):
        BackbonePreprocessing("tf", grayscale_to_rgb=1)


def test_build_rejects_wrong_channels():
    with pytest.raises(ValueError, match="Received: input_shape"):
        BackbonePreprocessing("caffe")(np.zeros((1, 2, 2, 1), "float32"))


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_config_save_and_export(tmp_path, mode):
    layer = BackbonePreprocessing(mode, name="pre")
    config = layer.get_config()
    assert BackbonePreprocessing.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(BackbonePreprocessing) == \
        "kerascnn>BackbonePreprocessing"
    inputs = keras.Input((5, 4, 3))
    model = keras.Model(inputs, layer(inputs))
    x = _pixels()
    expected = np.asarray(model(x))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-5)
    model.export(str(tmp_path / "saved"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved")).serve(x)
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-5,
                               atol=1e-5)
