"""What `build_cnn` builds loads in plain Keras, without kerascnn, wherever a
Keras layer does the same job; its softmax stays float32 under mixed
precision."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerascnn.models import build_cnn


def _registered_names(model):
    text = json.dumps(model.get_config())
    return sorted({part.split('"')[0] for part in text.split('"kerascnn>')[1:]})


@pytest.mark.parametrize("kwargs", [
    {},
    {"normalization": "group"},
    {"normalization": "layer"},
    {"normalization": "instance"},
    {"max_norm": 3.0, "block_dropout": 0.2, "l2": 1e-4},
    {"head": "gap", "dense_units": 0},
])
def test_plain_keras_layers_only(kwargs):
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, verbose=False,
                      **{"dense_units": 8, **kwargs})
    assert _registered_names(model) == []
    # Keras' Dropout is inverted dropout: the same job as InvertedDropout.
    assert "Dropout" in {type(layer).__name__ for layer in model.layers}


def test_options_that_need_kerascnn_say_so():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, dense_units=8,
                      dropconnect=0.3, verbose=False)
    assert _registered_names(model) == ["DropConnectDense"]


def test_max_norm_bounds_each_conv_filter():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, max_norm=2.0,
                      verbose=False)
    conv = model.get_layer("block1_conv1")
    assert isinstance(conv.kernel_constraint, keras.constraints.MaxNorm)
    kernel = np.random.default_rng(0).normal(0, 5, (3, 3, 1, 4))
    norms = np.sqrt((np.asarray(conv.kernel_constraint(kernel)) ** 2).sum(
        axis=(0, 1, 2)))
    np.testing.assert_allclose(norms, 2.0, rtol=1e-5)


def test_group_norm_matches_kerascnn_layer():
    from kerascnn.layers import GroupNormalization

    x = np.random.default_rng(0).normal(2, 3, (2, 4, 4, 8)).astype("float32")
    ours = GroupNormalization(groups=4)
    plain = keras.layers.GroupNormalization(groups=4)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(plain(x)),
                               atol=1e-5)


def test_loads_without_kerascnn(tmp_path):
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, dense_units=8,
                      normalization="group", max_norm=3.0,
                      normalizer=np.random.default_rng(0).uniform(
                          0, 255, (6, 8, 8, 1)), verbose=False)
    path = tmp_path / "m.keras"
    model.save(path)
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 1)).astype(
        "float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    code = (
        "import sys; sys.modules['kerascnn'] = None  # not importable\n"
        "import numpy as np, keras; p = sys.argv[1]\n"
        "m = keras.saving.load_model(p + '/m.keras')\n"
        "np.testing.assert_allclose(m.predict(np.load(p + '/x.npy'), "
        "verbose=0), np.load(p + '/y.npy'), atol=1e-6)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_softmax_is_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_cnn((8, 8, 1), 3, depth=1, filters=4, dense_units=8,
                          verbose=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("logits").compute_dtype == "float16"
    assert model.output.dtype == "float32"


def test_auto_head_flattens_small_maps_and_pools_large_ones():
    small = build_cnn((28, 28, 1), 10, verbose=False)
    large = build_cnn((96, 96, 3), 10, verbose=False)
    assert small.kerascnn_config["head_resolved"] == "flatten"
    assert type(small.get_layer("head_pool")).__name__ == "Flatten"
    assert large.kerascnn_config["head_resolved"] == "gap"
    assert type(large.get_layer("head_pool")).__name__ == (
        "GlobalAveragePooling2D")
