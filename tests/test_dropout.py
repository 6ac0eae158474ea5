import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.layers import InvertedDropout, mc_predict


def _x(shape=(4, 64), seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape).astype(
        "float32")


def test_kept_values_are_exactly_x_over_p_and_rate_is_respected():
    x = _x((8, 500))
    rate = 0.3
    out = np.asarray(InvertedDropout(rate, seed=3)(x, training=True))
    kept = out != 0
    p = np.float32(1.0) - np.float32(rate)
    np.testing.assert_array_equal(out[kept], x[kept] / p)
    # 4000 Bernoulli draws: the dropped fraction is within 4 sigma of rate.
    sigma = np.sqrt(rate * (1 - rate) / x.size)
    assert abs((1 - kept.mean()) - rate) < 4 * sigma


def test_expectation_preserved_over_many_masks():
    x = _x((2, 32))
    layer = InvertedDropout(0.5, seed=1)
    draws = np.stack([np.asarray(layer(x, training=True))
                      for _ in range(400)])
    # Each draw of an entry is x/p w.p. p, 0 otherwise: std x*sqrt((1-p)/p).
    mean = draws.mean(axis=0)
    sigma = x / np.sqrt(400)  # (1-p)/p = 1 for p = 0.5
    assert np.all(np.abs(mean - x) < 5 * sigma)
    assert abs(mean.mean() - x.mean()) < 0.02
    # The masks differ between calls (the seed generator advances).
    assert not np.array_equal(draws[0], draws[1])


def test_inference_is_identity_and_deterministic():
    x = _x()
    layer = InvertedDropout(0.5)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    model = keras.Sequential([keras.Input((64,)), layer])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_rate_zero_is_identity_in_training():
    x = _x()
    np.testing.assert_array_equal(
        np.asarray(InvertedDropout(0.0)(x, training=True)), x)


def test_seed_makes_masks_reproducible():
    x = _x()
    first = np.asarray(InvertedDropout(0.5, seed=7)(x, training=True))
    second = np.asarray(InvertedDropout(0.5, seed=7)(x, training=True))
    np.testing.assert_array_equal(first, second)


def test_noise_shape_drops_whole_feature_maps():
    x = np.ones((3, 4, 4, 16), "float32")
    out = np.asarray(InvertedDropout(0.5, noise_shape=(None, 1, 1, None),
                                     seed=2)(x, training=True))
    # Every feature map is either all 0 or all 2.
    per_map = out.transpose(0, 3, 1, 2)
    assert set(np.unique(out).tolist()) == {0.0, 2.0}
    assert np.all(per_map.min(axis=(2, 3)) == per_map.max(axis=(2, 3)))


def test_mc_inference_varies_at_predict_time():
    x = _x((4, 64))
    model = keras.Sequential([keras.Input((64,)),
                              InvertedDropout(0.5, mc_inference=True)])
    first = model.predict(x, verbose=0)
    second = model.predict(x, verbose=0)
    assert not np.array_equal(first, second)
    kept = first != 0
    np.testing.assert_array_equal(first[kept], x[kept] / np.float32(0.5))


def _linear_model():
    model = keras.Sequential([
        keras.Input((16,)),
        InvertedDropout(0.4),
        keras.layers.Dense(3, kernel_initializer="glorot_uniform"),
    ])
    return model


def test_mc_predict_mean_and_std():
    x = _x((5, 16))
    model = _linear_model()
    deterministic = model.predict(x, verbose=0)
    samples = 200
    mean, std = mc_predict(model, x, samples=samples, batch_size=2)
    assert mean.shape == std.shape == (5, 3)
    assert mean.dtype == np.float32
    # For y = (d * x / p) @ W + b, d ~ Bernoulli(p):
    # var(y_j) = sum_i x_i^2 W_ij^2 (1 - p) / p.
    kernel = model.layers[1].get_weights()[0]
    p = 0.6
    theory = np.sqrt((x[:, :, None] ** 2 * kernel[None] ** 2).sum(axis=1)
                     * (1 - p) / p)
    np.testing.assert_allclose(std, theory, rtol=0.2)
    # The MC mean estimates the deterministic output: z-scores of the 15
    # (correlated) entries stay small.
    z = (mean - deterministic) / (theory / np.sqrt(samples))
    assert np.abs(z).max() < 5 and np.abs(z).mean() < 1.5
    # The layer's setting is restored and predict is deterministic again.
    assert model.layers[0].mc_inference is False
    np.testing.assert_array_equal(model.predict(x, verbose=0), deterministic)


def test_mc_predict_std_matches_closed_form():
    # y = sum(d_i * x_i / p) with d_i ~ Bernoulli(p): var = sum x_i^2 (1-p)/p.
    x = np.ones((1, 64), "float32")
    model = keras.Sequential([
        keras.Input((64,)), InvertedDropout(0.5),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    # Tiled rows are independent draws: 4 rows x 100 passes = 400 samples;
    # a dataset of (inputs, targets) batches works like the array.
    data = tf.data.Dataset.from_tensor_slices(
        (np.repeat(x, 4, axis=0), np.zeros(4))).batch(3)
    mean, std = mc_predict(model, data, samples=100)
    assert mean.shape == (4, 1)
    assert abs(mean.mean() - 64.0) < 4 * 8.0 / np.sqrt(400)
    pooled = np.sqrt((std ** 2).mean())
    assert abs(pooled - 8.0) < 0.8


def test_mc_predict_rejects_bad_arguments():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    x = np.ones((2, 4), "float32")
    with pytest.raises(ValueError, match="Received: model="):
        mc_predict(plain, x)
    with pytest.raises(ValueError, match="Received: model="):
        mc_predict("model", x)
    with pytest.raises(ValueError, match="Received: samples=1"):
        mc_predict(_linear_model(), np.ones((2, 16), "float32"), samples=1)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        mc_predict(_linear_model(), np.ones((2, 16), "float32"),
                   batch_size=0)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "0.5", None, True])
def test_rejects_bad_rate(bad):
    with pytest.raises(ValueError, match=f"Received: rate={bad!r}"):
        InvertedDropout(bad)


@pytest.mark.parametrize("name, bad", [("noise_shape", "abc"),
                                       ("noise_shape", (None, 0)),
                                       ("seed", -1), ("seed", 1.5),
                                       ("mc_inference", 1)])
def test_rejects_bad_arguments(name, bad):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        InvertedDropout(0.5, **{name: bad})


def test_config_round_trip():
    layer = InvertedDropout(0.25, noise_shape=(None, 1, 8), seed=3,
                            mc_inference=True, name="drop")
    config = layer.get_config()
    assert config["rate"] == 0.25 and config["seed"] == 3
    assert config["noise_shape"] == [None, 1, 8]
    assert config["mc_inference"] is True
    assert InvertedDropout.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(InvertedDropout) == \
        "kerascnn>InvertedDropout"


def test_fit_save_load_export(tmp_path):
    x = _x((16, 8))
    y = (x.sum(axis=1) > 10).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8),
                              InvertedDropout(0.5, seed=1),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.layers[1], InvertedDropout)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), expected)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(np.asarray(loaded.serve(x)), expected,
                               atol=1e-6)
