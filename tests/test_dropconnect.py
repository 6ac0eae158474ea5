import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.layers import DropConnectConv2D, DropConnectDense, mc_predict


def _dense(rate=0.5, **kwargs):
    layer = DropConnectDense(4, rate=rate, bias_initializer="random_normal",
                             **kwargs)
    layer.build((None, 6))
    return layer


def test_dense_drops_kernel_entries_with_inverted_scaling():
    layer = _dense(rate=0.5, seed=1)
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    # Inputs e_i pick kernel row i: the training output is the masked,
    # rescaled kernel, row by row. Stacking the identity twice shows the
    # mask is shared by the batch.
    x = np.concatenate([np.eye(6, dtype="float32")] * 2)
    out = np.asarray(layer(x, training=True)) - bias
    masked = out[:6]
    np.testing.assert_allclose(out[6:], masked, atol=1e-6)
    dropped = np.isclose(masked, 0.0, atol=1e-6)
    np.testing.assert_allclose(masked[~dropped], kernel[~dropped] / 0.5,
                               rtol=1e-6)
    # Single weights are dropped, not whole input rows (which is dropout).
    assert 0 < dropped.sum() < dropped.size
    assert not np.all(dropped.all(axis=1) | (~dropped).all(axis=1))


def test_dense_bias_is_never_dropped():
    layer = _dense(rate=0.9)
    bias = layer.get_weights()[1]
    for _ in range(5):
        out = np.asarray(layer(np.zeros((2, 6), "float32"), training=True))
        np.testing.assert_allclose(out, np.broadcast_to(bias, (2, 4)),
                                   atol=1e-7)


def test_dense_expectation_equals_inference_output():
    layer = _dense(rate=0.4)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6)).astype("float32")
    inference = np.asarray(layer(x))
    draws = np.stack([np.asarray(layer(x, training=True))
                      for _ in range(400)])
    # Per output: var = sum_i x_i^2 W_ij^2 (1-p)/p.
    kernel = layer.get_weights()[0]
    p = 0.6
    sd = np.sqrt((x[:, :, None] ** 2 * kernel[None] ** 2).sum(axis=1)
                 * (1 - p) / p)
    z = (draws.mean(axis=0) - inference) / (sd / np.sqrt(400))
    assert np.abs(z).max() < 5 and np.abs(z).mean() < 1.5
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.2)
    assert not np.allclose(draws[0], draws[1])  # training outputs differ


def test_dense_inference_is_deterministic_and_plain_dense():
    layer = _dense(rate=0.5, activation="relu")
    x = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    plain = keras.layers.Dense(4, activation="relu")
    plain.build((None, 6))
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(layer(x)))
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(plain(x)),
                               atol=1e-6)
    # The kernel variable itself is never modified by training calls.
    before = layer.get_weights()[0].copy()
    layer(x, training=True)
    np.testing.assert_array_equal(layer.get_weights()[0], before)


def test_conv_drops_kernel_entries_and_keeps_expectation():
    layer = DropConnectConv2D(3, 3, rate=0.5, padding="same", seed=4)
    # A one-pixel impulse makes each output pixel a single kernel weight.
    x = np.zeros((1, 5, 5, 1), "float32")
    x[0, 2, 2, 0] = 1.0
    inference = np.asarray(layer(x))
    out = np.asarray(layer(x, training=True))
    dropped = np.isclose(out, 0.0, atol=1e-7) & ~np.isclose(inference, 0.0)
    kept = ~dropped & ~np.isclose(inference, 0.0)
    np.testing.assert_allclose(out[kept], inference[kept] / 0.5, rtol=1e-6)
    assert 0 < dropped.sum() < 27
    # Expectation over many masks equals the full-kernel output.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 1)).astype("float32")
    inference = np.asarray(layer(x))
    draws = np.stack([np.asarray(layer(x, training=True))
                      for _ in range(300)])
    sem = draws.std(axis=0) / np.sqrt(300)
    z = (draws.mean(axis=0) - inference) / np.maximum(sem, 1e-6)
    assert np.abs(z).mean() < 1.5 and np.abs(z).max() < 6
    np.testing.assert_array_equal(np.asarray(layer(x)), inference)


def test_conv_matches_keras_conv2d_at_inference():
    layer = DropConnectConv2D(4, (3, 2), rate=0.3, strides=2,
                              activation="tanh", use_bias=True)
    x = np.random.default_rng(3).normal(size=(2, 9, 8, 3)).astype("float32")
    out = np.asarray(layer(x))
    plain = keras.layers.Conv2D(4, (3, 2), strides=2, activation="tanh")
    plain.build(x.shape)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(out, np.asarray(plain(x)), atol=1e-6)


def test_fit_updates_weights_and_save_load_export(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3)))
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        DropConnectConv2D(4, 3, rate=0.3, activation="relu", seed=1,
                          kernel_regularizer=keras.regularizers.L2(1e-4)),
        keras.layers.Flatten(),
        DropConnectDense(2, rate=0.5, seed=2),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y.astype("int64"), epochs=2, batch_size=8,
                        verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(not np.array_equal(a, b)
               for a, b in zip(before, model.get_weights()))
    expected = model.predict(x[:4], verbose=0)
    np.testing.assert_array_equal(model.predict(x[:4], verbose=0), expected)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(reloaded.layers[0]) is DropConnectConv2D
    assert reloaded.layers[2].rate == 0.5
    np.testing.assert_allclose(reloaded.predict(x[:4], verbose=0), expected,
                               atol=1e-6)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(np.asarray(loaded.serve(x[:4])), expected,
                               atol=1e-5)
    # MC DropConnect through mc_predict: spread > 0, mean near the output.
    mean, std = mc_predict(model, x[:4], samples=30)
    assert np.all(std > 0)
    assert np.abs(mean - expected).mean() < np.abs(expected).mean()


def test_mc_inference_drops_at_predict_time():
    model = keras.Sequential([keras.Input((6,)),
                              DropConnectDense(8, rate=0.5,
                                               mc_inference=True)])
    x = np.ones((2, 6), "float32")
    assert not np.array_equal(model.predict(x, verbose=0),
                              model.predict(x, verbose=0))


def test_config_round_trip():
    dense = DropConnectDense(5, rate=0.25, seed=3, mc_inference=True,
                             activation="relu", use_bias=False,
                             kernel_constraint=keras.constraints.NonNeg())
    config = dense.get_config()
    assert (config["units"], config["rate"], config["seed"],
            config["mc_inference"], config["use_bias"]) == (5, 0.25, 3, True,
                                                            False)
    assert DropConnectDense.from_config(config).get_config() == config
    conv = DropConnectConv2D(6, (3, 3), rate=0.1, strides=2, padding="same")
    config = conv.get_config()
    assert (config["filters"], config["kernel_size"], config["rate"],
            config["strides"], config["padding"]) == (6, (3, 3), 0.1, (2, 2),
                                                      "same")
    assert DropConnectConv2D.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(DropConnectConv2D) == \
        "kerascnn>DropConnectConv2D"


@pytest.mark.parametrize("bad", [1.0, -0.5, "0.5", None])
def test_rejects_bad_rate(bad):
    with pytest.raises(ValueError, match=f"Received: rate={bad!r}"):
        DropConnectDense(4, rate=bad)
    with pytest.raises(ValueError, match=f"Received: rate={bad!r}"):
        DropConnectConv2D(4, 3, rate=bad)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Received: units=0"):
        DropConnectDense(0)
    with pytest.raises(ValueError, match="Received: filters=2.0"):
        DropConnectConv2D(2.0, 3)
    with pytest.raises(ValueError, match="Received: mc_inference='yes'"):
        DropConnectDense(3, mc_inference="yes")
    with pytest.raises(ValueError, match="Received: seed=-3"):
        DropConnectConv2D(3, 3, seed=-3)


def test_mixed_precision_policy():
    layer = DropConnectConv2D(4, 3, rate=0.5, dtype="mixed_float16")
    x = np.random.default_rng(6).normal(size=(2, 6, 6, 2)).astype("float32")
    inference = layer(x)
    training = layer(x, training=True)
    assert inference.dtype == training.dtype == "float16"
    assert layer.kernel.dtype == "float32"  # variables stay float32
    assert not np.allclose(np.asarray(training), np.asarray(inference))
    dense = DropConnectDense(3, rate=0.5, dtype="mixed_float16")
    assert dense(np.ones((2, 5), "float32"), training=True).dtype == "float16"
