import keras
import numpy as np
import pytest
import tensorflow as tf

import kerascnn.layers
from kerascnn.layers import GroupNormalization
from kerascnn.layers.group_normalization import auto_groups


def reference_group_norm(x, groups, gamma, beta, epsilon=1e-3):
    """Wu & He (2018), Fig. 3, in NumPy for channels-last input."""
    n, c = x.shape[0], x.shape[-1]
    spatial = x.shape[1:-1]
    grouped = x.reshape((n,) + spatial + (groups, c // groups)).astype(
        np.float64)
    axes = tuple(range(1, len(spatial) + 1)) + (len(spatial) + 2,)
    mean = grouped.mean(axis=axes, keepdims=True)
    var = grouped.var(axis=axes, keepdims=True)
    normed = ((grouped - mean) / np.sqrt(var + epsilon)).reshape(x.shape)
    return normed * gamma + beta


def save_load_export(model, x, tmp_path):
    """Outputs of the model, its .keras reload and its exported SavedModel."""
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    model.export(str(tmp_path / "export"), verbose=False)
    # Keep the loaded object alive while serving (its variables die with it).
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    served = np.asarray(loaded.serve(x))
    return expected, reloaded.predict(x, verbose=0), served


def test_all_is_pinned():
    assert sorted(kerascnn.layers.__all__) == [
        "DropConnectConv2D", "DropConnectDense", "GroupNormalization",
        "InvertedDropout", "mc_predict"]


@pytest.mark.parametrize("groups", [1, 2, 3, 12])
def test_matches_numpy_reference(groups):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(3, 5, 4, 12)).astype("float32")
    gamma = rng.normal(size=12).astype("float32")
    beta = rng.normal(size=12).astype("float32")
    layer = GroupNormalization(groups=groups)
    layer.build(x.shape)
    layer.set_weights([gamma, beta])
    out = np.asarray(layer(x))
    np.testing.assert_allclose(
        out, reference_group_norm(x, groups, gamma, beta), atol=2e-5)


def test_instance_norm_each_channel_zero_mean_unit_var():
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 2.0, size=(2, 6, 6, 4)).astype("float32")
    out = np.asarray(GroupNormalization(groups=-1, epsilon=1e-6)(x))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.0, atol=1e-4)


def test_channels_first_axis_and_rank3():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 3, 3)).astype("float32")  # NCHW
    out = np.asarray(GroupNormalization(groups=3, axis=1)(x))
    ref = reference_group_norm(x.transpose(0, 2, 3, 1), 3, 1.0, 0.0)
    np.testing.assert_allclose(out, ref.transpose(0, 3, 1, 2), atol=2e-5)
    seq = rng.normal(size=(2, 7, 8)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(GroupNormalization(groups=4)(seq)),
        reference_group_norm(seq, 4, 1.0, 0.0), atol=2e-5)


def test_center_scale_off_has_no_weights():
    layer = GroupNormalization(groups=2, center=False, scale=False)
    layer.build((None, 4, 4, 8))
    assert layer.weights == []


@pytest.mark.parametrize("channels, expected",
                         [(1, 1), (3, 3), (30, 30), (48, 24), (64, 32),
                          (96, 32), (100, 25), (37, 1)])
def test_auto_groups(channels, expected):
    assert auto_groups(channels) == expected
    layer = GroupNormalization(groups="auto")
    layer.build((None, 2, 2, channels))
    assert layer.groups == expected
    assert layer.get_config()["groups"] == "auto"


def test_minus_one_resolves_to_channels_and_config_keeps_it():
    layer = GroupNormalization(groups=-1)
    layer.build((None, 4, 4, 6))
    assert layer.groups == 6
    config = layer.get_config()
    assert config["groups"] == -1
    clone = GroupNormalization.from_config(config)
    assert clone.get_config() == config


def test_batch_size_independence():
    rng = np.random.default_rng(3)
    batch = rng.normal(size=(8, 6, 6, 8)).astype("float32")
    layer = GroupNormalization(groups=4)
    alone = np.asarray(layer(batch[:1]))
    together = np.asarray(layer(batch))
    np.testing.assert_allclose(alone[0], together[0], rtol=0, atol=1e-6)
    # The training flag changes nothing either (no moving statistics).
    np.testing.assert_array_equal(np.asarray(layer(batch, training=True)),
                                  together)


@pytest.mark.parametrize("bad", [0, -2, "x", 1.5, None, True])
def test_rejects_bad_groups(bad):
    with pytest.raises(ValueError, match=f"Received: groups={bad!r}"):
        GroupNormalization(groups=bad)


@pytest.mark.parametrize("name, bad", [("epsilon", 0.0), ("epsilon", "1"),
                                       ("axis", 0), ("axis", 1.0),
                                       ("center", 1), ("scale", "yes")])
def test_rejects_bad_arguments(name, bad):
    with pytest.raises(ValueError, match=f"Received: {name}={bad!r}"):
        GroupNormalization(**{name: bad})


def test_non_divisible_channels_fail_in_build_quoting_shape():
    layer = GroupNormalization(groups=4)
    with pytest.raises(ValueError, match=r"number of channels \(30, axis -1\)"
                       r".*Received: groups=4 for input_shape=\(None, 8, 8, "
                       r"30\)"):
        layer.build((None, 8, 8, 30))
    with pytest.raises(ValueError, match="Received: groups=32"):
        GroupNormalization()(keras.Input((8, 8, 16)))


def test_unknown_channels_and_batch_axis_fail_in_build():
    with pytest.raises(ValueError, match=r"input_shape=\(None, 4, None\)"):
        GroupNormalization(groups=2).build((None, 4, None))
    with pytest.raises(ValueError, match="Received: axis=-3"):
        GroupNormalization(groups=2, axis=-3).build((None, 4, 4))


def test_trains_in_fit():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int64")
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3),
        GroupNormalization(groups="auto"),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    gamma = model.layers[1].get_weights()[0]
    assert not np.allclose(gamma, 1.0)  # the scales were trained


def test_save_load_export(tmp_path):
    rng = np.random.default_rng(5)
    inputs = keras.Input((6, 6, 8))
    outputs = GroupNormalization(
        groups=-1, gamma_initializer="random_normal",
        beta_initializer="random_normal",
        gamma_regularizer=keras.regularizers.L2(1e-4))(inputs)
    outputs = GroupNormalization(groups="auto", epsilon=1e-5)(outputs)
    model = keras.Model(inputs, outputs)
    x = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    expected, reloaded, served = save_load_export(model, x, tmp_path)
    np.testing.assert_allclose(reloaded, expected, atol=1e-6)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    layer = keras.saving.load_model(tmp_path / "m.keras").layers[1]
    assert type(layer) is GroupNormalization
    assert layer.get_config()["groups"] == -1
    assert keras.saving.get_registered_name(GroupNormalization) == \
        "kerascnn>GroupNormalization"


def test_mixed_precision_float16_matches_float32():
    x = np.random.default_rng(6).normal(size=(2, 4, 4, 8)).astype("float32")
    half = GroupNormalization(groups=2, dtype="mixed_float16")
    out = half(x)
    assert out.dtype == "float16" and half.gamma.dtype == "float32"
    np.testing.assert_allclose(np.asarray(out, dtype="float32"),
                               reference_group_norm(x, 2, 1.0, 0.0),
                               atol=5e-3)


def test_matches_tensorflow_addons_computation():
    """tfa.layers.GroupNormalization's call, rewritten with tf.nn ops."""
    rng = np.random.default_rng(7)
    x = rng.normal(1.0, 2.0, size=(2, 5, 5, 12)).astype("float32")
    gamma = rng.normal(size=12).astype("float32")
    beta = rng.normal(size=12).astype("float32")
    layer = GroupNormalization(groups=4)
    layer.build(x.shape)
    layer.set_weights([gamma, beta])
    # tfa: reshape to (N, H, W, G, C/G), tf.nn.moments over (1, 2, 4),
    # tf.nn.batch_normalization with gamma/beta broadcast as (1,1,1,G,C/G).
    grouped = tf.reshape(x, (2, 5, 5, 4, 3))
    mean, variance = tf.nn.moments(grouped, [1, 2, 4], keepdims=True)
    tfa = tf.nn.batch_normalization(
        grouped, mean=mean, variance=variance,
        scale=tf.reshape(gamma, (1, 1, 1, 4, 3)),
        offset=tf.reshape(beta, (1, 1, 1, 4, 3)), variance_epsilon=1e-3)
    np.testing.assert_allclose(np.asarray(layer(x)),
                               np.reshape(np.asarray(tfa), x.shape),
                               atol=1e-5)
