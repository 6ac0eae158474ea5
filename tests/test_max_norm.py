import keras
import numpy as np
import pytest
import tensorflow as tf

import kerascnn.constraints
from kerascnn.constraints import MaxNorm
from kerascnn.constraints.max_norm import auto_axes

EPS = keras.backend.epsilon()


def test_all_is_pinned():
    assert kerascnn.constraints.__all__ == ["MaxNorm"]


def test_defaults_are_keras_defaults():
    # Same name as Keras' class, so the same defaults: no trap when both
    # are imported; axis="auto" is what ours adds.
    ours, theirs = MaxNorm(), keras.constraints.MaxNorm()
    assert (ours.max_value, ours.axis) == (theirs.max_value, theirs.axis)
    w = np.random.default_rng(0).normal(size=(3, 3, 2, 4)) * 5
    np.testing.assert_allclose(np.asarray(ours(w)), np.asarray(theirs(w)),
                               rtol=1e-6)


def test_dense_kernel_columns_are_capped():
    w = np.array([[3.0, 0.6], [4.0, 0.8], [0.0, 0.0]], "float32")
    out = np.asarray(MaxNorm(2.0)(w))
    # Column 0 has norm 5 -> rescaled to norm 2; column 1 (norm 1) is kept.
    np.testing.assert_allclose(out[:, 0], [1.2, 1.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], w[:, 1] / (1 + EPS), rtol=1e-6)


def test_conv_kernel_whole_filters_are_capped():
    w = np.zeros((2, 2, 1, 2), "float32")
    w[..., 0] = 2.0  # filter 0: four weights of 2 -> norm 4
    w[0, 0, 0, 1] = 0.5  # filter 1: norm 0.5
    out = np.asarray(MaxNorm(1.0, axis="auto")(w))
    np.testing.assert_allclose(out[..., 0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], w[..., 1] / (1 + EPS), rtol=1e-6)
    # Keras' MaxNorm (axis=0 by default) caps columns of 2, not filters.
    keras_out = np.asarray(keras.constraints.MaxNorm(1.0)(w))
    np.testing.assert_allclose(keras_out[..., 0], 1 / np.sqrt(2), rtol=1e-6)


@pytest.mark.parametrize("shape, axes", [((5, 3), (0,)),
                                         ((3, 4, 8), (0, 1)),
                                         ((3, 3, 4, 8), (0, 1, 2)),
                                         ((2, 3, 3, 4, 8), (0, 1, 2, 3))])
def test_auto_axes_by_rank(shape, axes):
    assert auto_axes(np.zeros(shape, "float32")) == axes
    w = np.random.default_rng(0).normal(size=shape).astype("float32") * 5
    out = np.asarray(MaxNorm(1.5, axis="auto")(w))
    norms = np.sqrt((out ** 2).sum(axis=axes))
    assert norms.shape == (shape[-1],)
    np.testing.assert_allclose(norms, 1.5, rtol=1e-5)


def test_depthwise_kernels_are_recognised():
    depthwise = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)
    depthwise.build((None, 8, 8, 4))
    assert auto_axes(depthwise.kernel) == (0, 1)
    separable = keras.layers.SeparableConv2D(6, 3)
    separable.build((None, 8, 8, 4))
    assert auto_axes(separable.depthwise_kernel) == (0, 1)
    assert auto_axes(separable.pointwise_kernel) == (0, 1, 2)
    conv = keras.layers.Conv2D(6, 3)
    conv.build((None, 8, 8, 4))
    assert auto_axes(conv.kernel) == (0, 1, 2)
    # Per (input channel, multiplier) unit: a (3, 3) norm each.
    depthwise.kernel.assign(np.full((3, 3, 4, 2), 1.0, "float32"))
    out = np.asarray(MaxNorm(1.5, axis="auto")(depthwise.kernel))
    np.testing.assert_allclose(out, 0.5, rtol=1e-6)


def test_explicit_axes():
    w = np.full((2, 2, 3, 4), 1.0, "float32")
    np.testing.assert_allclose(np.asarray(MaxNorm(1.0, axis=(0, 1))(w)),
                               0.5, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(MaxNorm(1.0, axis=-1)(w)), 0.5,
                               rtol=1e-6)
    bias = np.array([3.0, 4.0], "float32")
    np.testing.assert_allclose(np.asarray(MaxNorm(1.0, axis=0)(bias)),
                               [0.6, 0.8], rtol=1e-6)
    with pytest.raises(ValueError, match=r"Received: weight .*shape \(2,\)"):
        MaxNorm(axis="auto")(bias)


def _model(constrained):
    kwargs = ({"kernel_constraint": MaxNorm(1.0, axis="auto")}
              if constrained else {})
    depthwise = ({"depthwise_constraint": MaxNorm(1.0, axis="auto")}
                 if constrained
                 else {})
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", **kwargs),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, **depthwise),
        keras.layers.Flatten(),
        keras.layers.Dense(3, **kwargs),
    ])


def _unit_norms(model):
    conv, depthwise, _, dense = model.layers

    def norms(layer, axes):
        kernel = layer.get_weights()[0].astype("float64")
        return np.sqrt((kernel ** 2).sum(axis=axes)).ravel()

    return {"conv": norms(conv, (0, 1, 2)),
            "depthwise": norms(depthwise, (0, 1)),
            "dense": norms(dense, 0)}


def test_training_with_huge_learning_rate_respects_the_cap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    results = {}
    for constrained in (True, False):
        keras.utils.set_random_seed(7)
        model = _model(constrained)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=5.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        results[constrained] = _unit_norms(model)
    for name, norms in results[True].items():
        assert np.all(np.isfinite(norms)) and np.all(norms <= 1.0 + 1e-5), name
        # The cap binds: the largest units sit at c.
        assert norms.max() > 0.99, name
    for name, norms in results[False].items():
        assert np.all(np.isfinite(norms)) and norms.max() > 1.0, name


@pytest.mark.parametrize("bad", [0, -1.0, "3", None, float("inf"), True])
def test_rejects_bad_max_value(bad):
    with pytest.raises(ValueError, match=f"Received: max_value={bad!r}"):
        MaxNorm(bad)


@pytest.mark.parametrize("bad", ["all", 1.0, (), (0, 0), [0, "1"]])
def test_rejects_bad_axis(bad):
    with pytest.raises(ValueError, match=r"Received: axis="):
        MaxNorm(axis=bad)


def test_config_save_load_export(tmp_path):
    constraint = MaxNorm(3.5, axis=(0, 1))
    config = constraint.get_config()
    assert config == {"max_value": 3.5, "axis": [0, 1]}
    assert MaxNorm.from_config(config).get_config() == config
    assert MaxNorm().get_config() == {"max_value": 2.0, "axis": 0}
    assert keras.saving.get_registered_name(MaxNorm) == "kerascnn>MaxNorm"
    model = _model(True)
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 1)).astype("float32")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    restored = reloaded.layers[0].kernel_constraint
    assert isinstance(restored, MaxNorm)
    assert restored.get_config() == {"max_value": 1.0, "axis": "auto"}
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected,
                               atol=1e-6)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(np.asarray(loaded.serve(x)), expected,
                               atol=1e-5)


def test_constraint_holds_under_mirrored_strategy(two_cpu_strategy):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    with two_cpu_strategy.scope():
        model = _model(True)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=5.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for name, norms in _unit_norms(model).items():
        assert np.all(norms <= 1.0 + 1e-5) and norms.max() > 0.99, name
