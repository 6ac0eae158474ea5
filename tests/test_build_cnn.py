"""Tests for kerascnn.models: build_cnn and cnn_output_shapes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn import layers as kc_layers
from kerascnn import models
from kerascnn.models import NORMALIZATIONS, POOLINGS, build_cnn, cnn_output_shapes


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


def _layers_of(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


def test_public_api():
    assert sorted(models.__all__) == sorted(
        ["auto_depth", "build_cnn", "cnn_output_shapes", "NORMALIZATIONS",
         "POOLINGS"])
    assert set(NORMALIZATIONS) == {
        "auto", "batch", "sync_batch", "group", "layer", "instance", "none"}
    assert POOLINGS == ("max2", "max3", "avg2", "strided", None)


# -- cnn_output_shapes ------------------------------------------------------


def test_strided_pooling_downsamples_with_the_last_conv():
    shapes = cnn_output_shapes((28, 28, 1), depth=2, pooling="strided")
    # No pooling layer: each block's last conv strides 2 ("same": ceil).
    assert list(shapes) == ["input", "block1_conv1", "block1_conv2",
                            "block2_conv1", "block2_conv2"]
    assert shapes["block1_conv1"] == (28, 28, 32)
    assert shapes["block1_conv2"] == (14, 14, 32)
    assert shapes["block2_conv2"] == (7, 7, 64)
    # One conv per block with stride 2: stride 2 x 2 = 4 in that conv.
    shapes = cnn_output_shapes((32, 32, 3), depth=1, pooling="strided",
                               convs_per_block=1, stride=2)
    assert shapes["block1_conv1"] == (8, 8, 32)
    # "valid" and strict tiling: 28 - 3 + 1 = 26 -> (26 - 3) / 2 + 1 is not
    # an integer, named with the formula.
    with pytest.raises(ValueError, match="`block1_conv2`"):
        cnn_output_shapes((28, 28, 1), depth=1, pooling="strided",
                          padding="valid")
    model = build_cnn((28, 28, 1), 10, pooling="strided", verbose=False)
    assert not any("pool" in layer.name and layer.name != "head_pool"
                   for layer in model.layers)
    assert [layer.strides for layer in model.layers
            if layer.name.endswith("_conv2")] == [(2, 2), (2, 2)]
    assert model.get_layer("block2_act2").output.shape[1:] == (7, 7, 64)
    assert model.predict(np.zeros((2, 28, 28, 1)), verbose=0).shape == (2, 10)


def test_output_shapes_by_hand():
    shapes = cnn_output_shapes((28, 28, 1), depth=2)
    assert list(shapes) == [
        "input", "block1_conv1", "block1_conv2", "block1_pool",
        "block2_conv1", "block2_conv2", "block2_pool"]
    assert shapes["block1_pool"] == (14, 14, 32)
    assert shapes["block2_pool"] == (7, 7, 64)
    # valid 5x5 convs, stride 1, overlapping 3x3/2 pooling:
    # height 32 -5+1-> 28 -> 24 -pool-> (24-3)//2+1 = 11 -> 7 -> 3 -> 1
    # width  34 -> 30 -> 26 -pool-> 12 -> 8 -> 4 -pool-> 1
    shapes = cnn_output_shapes((32, 34, 3), depth=2, filter_size=5,
                               padding="valid", pooling="max3", filters=8)
    assert shapes["block1_conv2"] == (24, 26, 8)
    assert shapes["block1_pool"] == (11, 12, 8)
    assert shapes["block2_conv2"] == (3, 4, 16)
    assert shapes["block2_pool"] == (1, 1, 16)
    # width 30 instead: ... -> 6 -> 2, a 3x3 window no longer fits.
    with pytest.raises(ValueError, match="`block2_pool`.*width \\(2 - 3"):
        cnn_output_shapes((32, 30, 3), depth=2, filter_size=5,
                          padding="valid", pooling="max3")


def test_output_shapes_int_padding_and_stride():
    # padding 1, stride 2 on the first conv of each block, no pooling:
    # 28 -pad-> 30, (30 - 3) / 2 + 1 is not an integer -> strict error;
    # 27 -pad-> 29, (29 - 3) / 2 + 1 = 14 -> pad 16 -> 14.
    with pytest.raises(ValueError, match="block1_conv1"):
        cnn_output_shapes((28, 28, 1), depth=1, stride=2, padding=1,
                          pooling=None)
    shapes = cnn_output_shapes((27, 27, 1), depth=1, stride=2, padding=1,
                               pooling=None)
    assert shapes["block1_pad1"] == (29, 29, 1)
    assert shapes["block1_conv1"] == (14, 14, 32)
    assert shapes["block1_pad2"] == (16, 16, 32)
    assert shapes["block1_conv2"] == (14, 14, 32)


def test_too_small_input_names_the_layer():
    # 8 -> 6 -> 4 -pool-> 2 -> conv: (2 - 3 + 0) / 1 + 1 = 0.
    with pytest.raises(ValueError, match="block2_conv1") as info:
        cnn_output_shapes((8, 8, 1), depth=4, padding="valid")
    message = str(info.value)
    assert "height (2 - 3 + 2*0) / 1 + 1 = 0" in message
    assert "width (2 - 3 + 2*0) / 1 + 1 = 0" in message
    assert "Received: input_shape=(8, 8, 1), depth=4" in message
    # "same" convs never shrink; the fourth pooling gets a 1x1 input.
    with pytest.raises(ValueError, match="block4_pool"):
        cnn_output_shapes((8, 8, 1), depth=4)
    # Only the width collapses.
    with pytest.raises(ValueError, match="block3_pool") as info:
        cnn_output_shapes((64, 4, 1), depth=3)
    assert "height" not in str(info.value).split("Received")[0]


def test_build_cnn_checks_shapes_before_building(monkeypatch):
    built = []
    monkeypatch.setattr(keras.layers, "Conv2D",
                        lambda *a, **k: built.append(a))
    # 8 -> 7 -> 6 -> ... -> 1 after 7 convs; the 8th, block4_conv2, gets 0.
    with pytest.raises(ValueError, match="block4_conv2"):
        build_cnn((8, 8, 1), 10, depth=4, padding="valid", pooling=None,
                  filter_size=2)
    assert built == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(28, 28)), "Received: input_shape=\\(28, 28\\)"),
        (dict(input_shape=(0, 28, 1)), "Received: input_shape="),
        (dict(depth=0), "Received: depth=0"),
        (dict(filter_size=1.5), "Received: filter_size=1.5"),
        (dict(stride=0), "Received: stride=0"),
        (dict(padding="full"), "Received: padding='full'"),
        (dict(padding=-1), "Received: padding=-1"),
        (dict(pooling="max4"), "Received: pooling='max4'"),
        (dict(pooling=2), "Received: pooling=2"),
        (dict(convs_per_block=0), "Received: convs_per_block=0"),
        (dict(filters=True), "Received: filters=True"),
    ],
)
def test_output_shapes_rejects_bad_arguments(kwargs, match):
    kwargs.setdefault("input_shape", (28, 28, 1))
    with pytest.raises(ValueError, match=match):
        cnn_output_shapes(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_classes=1), "Received: num_classes=1"),
        (dict(normalization="weight"), "Received: normalization='weight'"),
        (dict(normalization=None), "Received: normalization=None"),
        (dict(batch_size=0), "Received: batch_size=0"),
        (dict(num_replicas=0), "Received: num_replicas=0"),
        (dict(dropout=1.0), "Received: dropout=1.0"),
        (dict(dropconnect=-0.1), "Received: dropconnect=-0.1"),
        (dict(dropconnect=0.5, dense_units=0), "Received: dropconnect=0.5"),
        (dict(max_norm=0), "Received: max_norm=0"),
        (dict(l1=-1e-3), "Received: l1=-0.001"),
        (dict(l2="big"), "Received: l2='big'"),
        (dict(dense_units=-1), "Received: dense_units=-1"),
        (dict(activation="relux"), "Received: activation='relux'"),
        (dict(augmentation="flip"), "Received: augmentation='flip'"),
        (dict(normalizer=keras.layers.Normalization()),
         "Received: normalizer=<Normalization"),
        (dict(normalizer=np.zeros((4, 28, 28, 3))),
         "Received: normalizer='array of shape \\(4, 28, 28, 3\\)"),
        (dict(head="mlp"), "Received: head='mlp'"),
        (dict(name=""), "Received: name=''"),
        (dict(strategy="mirrored"), "Received: strategy='mirrored'"),
    ],
)
def test_build_cnn_rejects_bad_arguments(kwargs, match):
    kwargs.setdefault("num_classes", 10)
    with pytest.raises(ValueError, match=match):
        build_cnn((28, 28, 1), **kwargs)


# -- structure ----------------------------------------------------------------


def test_default_structure_and_filters_doubling():
    model = build_cnn((28, 28, 1), 10, depth=3, filters=4, batch_size=32,
                      head="gap")
    convs = _layers_of(model, keras.layers.Conv2D)
    assert [c.name for c in convs] == [
        f"block{b}_conv{c}" for b in (1, 2, 3) for c in (1, 2)]
    assert [c.filters for c in convs] == [4, 4, 8, 8, 16, 16]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert all(not c.use_bias for c in convs)  # a norm follows every conv
    assert all(isinstance(c.kernel_initializer, keras.initializers.HeNormal)
               for c in convs)
    assert len(_layers_of(model, keras.layers.MaxPooling2D)) == 3
    assert len(_layers_of(model, keras.layers.BatchNormalization)) == 6
    assert [layer.name for layer in model.layers[-5:]] == [
        "head_pool", "head_dense", "head_dropout", "logits", "predictions"]
    assert isinstance(model.get_layer("head_pool"),
                      keras.layers.GlobalAveragePooling2D)
    assert type(model.get_layer("head_dropout")) is keras.layers.Dropout
    assert model.get_layer("head_dropout").rate == 0.5
    assert model.get_layer("head_dense").units == 128
    assert isinstance(model.get_layer("head_dense").kernel_initializer,
                      keras.initializers.HeNormal)
    assert model.output_shape == (None, 10)
    # conv weights 9*1*4 + 9*4*4 + 9*4*8 + 9*8*8 + 9*8*16 + 9*16*16
    # + BN 4 per channel + dense 16*128+128 + logits 128*10+10
    conv = 9 * (4 + 16 + 32 + 64 + 128 + 256)
    norm = 4 * 2 * (4 + 8 + 16)
    assert model.count_params() == conv + norm + 16 * 128 + 128 + 1290


def test_softmax_outputs_sum_to_one():
    model = build_cnn((16, 16, 3), 5, filters=4, dense_units=8)
    x = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3))
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("predictions").dtype_policy.compute_dtype == \
        "float32"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(depth=2, padding="valid", pooling="max3", filter_size=3),
        dict(padding=2, filter_size=5, stride=1, pooling="avg2",
             convs_per_block=1),
        dict(depth=1, stride=2, padding=1, pooling=None, input_shape=(27, 27, 2)),
    ],
)
def test_output_shapes_match_the_model(kwargs):
    input_shape = kwargs.pop("input_shape", (28, 28, 1))
    model = build_cnn(input_shape, 4, filters=2, dense_units=4, **kwargs)
    shapes = cnn_output_shapes(input_shape, filters=2, **kwargs)
    assert model.kerascnn_config["output_shapes"] == shapes
    for layer_name, shape in shapes.items():
        if layer_name == "input":
            continue
        assert tuple(model.get_layer(layer_name).output.shape[1:]) == shape


def test_pooling_and_padding_layers():
    model = build_cnn((28, 28, 1), 3, depth=2, padding=1, pooling="max3",
                      filters=2, dense_units=4)
    pad = model.get_layer("block1_pad1")
    assert isinstance(pad, keras.layers.ZeroPadding2D)
    assert pad.padding == ((1, 1), (1, 1))
    assert model.get_layer("block1_conv1").padding == "valid"
    pool = model.get_layer("block2_pool")
    assert isinstance(pool, keras.layers.MaxPooling2D)
    assert pool.pool_size == (3, 3) and pool.strides == (2, 2)
    avg = build_cnn((28, 28, 1), 3, pooling="avg2", filters=2, dense_units=4)
    assert isinstance(avg.get_layer("block1_pool"),
                      keras.layers.AveragePooling2D)
    none = build_cnn((28, 28, 1), 3, pooling=None, filters=2, dense_units=4)
    assert not any("pool" in layer.name and layer.name != "head_pool"
                   for layer in none.layers)


def test_flatten_head_no_dense_and_block_dropout():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=2, head="flatten",
                      dense_units=0, block_dropout=0.1, dropout=0.0)
    assert isinstance(model.get_layer("head_pool"), keras.layers.Flatten)
    names = [layer.name for layer in model.layers]
    assert "head_dense" not in names and "head_dropout" not in names
    assert type(model.get_layer("block1_dropout")) is keras.layers.Dropout
    # flatten of 4x4x2 -> logits: 32*3 + 3 weights
    assert model.get_layer("logits").count_params() == 32 * 3 + 3


def test_activation_sets_initializer():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=2, activation="tanh",
                      dense_units=4, normalization="none")
    conv = model.get_layer("block1_conv1")
    assert isinstance(conv.kernel_initializer, keras.initializers.GlorotUniform)
    assert conv.use_bias  # no normalization: keep the bias
    assert model.get_layer("block1_act1").activation is keras.activations.tanh


# -- normalization --------------------------------------------------------------


@pytest.mark.parametrize(
    "normalization, cls, groups",
    [
        ("batch", keras.layers.BatchNormalization, None),
        ("sync_batch", keras.layers.BatchNormalization, None),
        ("group", keras.layers.GroupNormalization, 2),
        ("layer", keras.layers.GroupNormalization, 1),
        ("instance", keras.layers.GroupNormalization, 4),
    ],
)
def test_normalization_choice_gives_layer_class(normalization, cls, groups):
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, dense_units=4,
                      normalization=normalization)
    norms = [layer for layer in model.layers if "_norm" in layer.name]
    assert [n.name for n in norms] == ["block1_norm1", "block1_norm2"]
    assert all(type(n) is cls for n in norms)
    if groups is not None:
        assert all(n.get_config()["groups"] == groups for n in norms)
    if normalization == "sync_batch":
        assert all(n.synchronized for n in norms)
    elif normalization == "batch":
        assert not any(n.synchronized for n in norms)
    assert model.kerascnn_config["normalization_resolved"] == normalization


def test_no_normalization():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, dense_units=4,
                      normalization="none")
    assert not any("_norm" in layer.name for layer in model.layers)


@pytest.mark.parametrize(
    "batch_size, num_replicas, expected",
    [
        (15, 1, "group"),
        (16, 1, "batch"),
        (64, 4, "batch"),   # 16 per replica
        (60, 4, "group"),   # 15 per replica
        (8, 1, "group"),
        (None, 1, "batch"),  # Keras' default batch of 32
    ],
)
def test_auto_normalization_threshold(batch_size, num_replicas, expected,
                                      capsys):
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, dense_units=4,
                      batch_size=batch_size, num_replicas=num_replicas)
    config = model.kerascnn_config
    assert config["normalization"] == "auto"
    assert config["normalization_resolved"] == expected
    cls = (keras.layers.GroupNormalization if expected == "group"
           else keras.layers.BatchNormalization)
    assert type(model.get_layer("block1_norm1")) is cls
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].endswith(config[
        "normalization_reason"])
    assert cls.__name__ in printed[0]
    if expected == "group":
        assert "Wu & He 2018" in printed[0]


def test_auto_normalization_quiet_and_explicit_choice_silent(capsys):
    build_cnn((8, 8, 1), 3, depth=1, filters=4, batch_size=4, verbose=False)
    build_cnn((8, 8, 1), 3, depth=1, filters=4, normalization="batch")
    assert capsys.readouterr().out == ""


def test_strategy_sets_replicas_and_scope(mirrored):
    model = build_cnn((8, 8, 1), 3, depth=1, filters=4, dense_units=4,
                      batch_size=16, strategy=mirrored, verbose=False)
    assert model.kerascnn_config["num_replicas"] == 2
    # 16 images over 2 replicas = 8 per replica -> GroupNorm.
    assert model.kerascnn_config["normalization_resolved"] == "group"
    assert isinstance(model.get_layer("block1_conv1").kernel.value,
                      tf.distribute.DistributedValues)
    with pytest.raises(ValueError, match="Received: num_replicas=3"):
        build_cnn((8, 8, 1), 3, strategy=mirrored, num_replicas=3)


def test_sync_batch_norm_fits_under_strategy(mirrored):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 8, 8, 1)).astype("float32")
    y = np.arange(8) % 2
    model = build_cnn((8, 8, 1), 2, depth=1, filters=2, dense_units=4,
                      normalization="sync_batch", strategy=mirrored)
    with mirrored.scope():
        model.compile(optimizer="sgd",
                      loss="sparse_categorical_crossentropy")
    norm = model.get_layer("block1_norm1")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # One step with momentum 0.99 moved the moving mean towards the batch
    # mean (over both replicas' halves).
    assert np.abs(norm.moving_mean.numpy()).max() > 0


# -- regularization -------------------------------------------------------------


def test_regularization_losses_and_max_norm():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=2, dense_units=4,
                      l1=1e-3, l2=1e-2, max_norm=2.5)
    kernels = [layer for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert [k.name for k in kernels] == [
        "block1_conv1", "block1_conv2", "head_dense", "logits"]
    for layer in kernels:
        reg = layer.kernel_regularizer
        assert isinstance(reg, keras.regularizers.L1L2)
        assert reg.l1 == pytest.approx(1e-3) and reg.l2 == pytest.approx(1e-2)
        constraint = layer.kernel.constraint
        assert type(constraint) is keras.constraints.MaxNorm
        assert constraint.max_value == 2.5
        assert constraint.axis == ([0, 1, 2] if "conv" in layer.name else 0)
    # One penalty per kernel, equal to the elastic-net formula.
    assert len(model.losses) == 4
    expected = sum(1e-3 * np.abs(k.kernel.numpy()).sum()
                   + 1e-2 * np.square(k.kernel.numpy()).sum() for k in kernels)
    total = float(sum(float(loss) for loss in model.losses))
    assert total == pytest.approx(expected, rel=1e-5)


def test_no_regularization_by_default():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=2, dense_units=4)
    assert model.losses == []
    assert model.get_layer("block1_conv1").kernel.constraint is None


def test_dropconnect_dense():
    model = build_cnn((8, 8, 1), 3, depth=1, filters=2, dense_units=4,
                      dropconnect=0.3)
    dense = model.get_layer("head_dense")
    assert type(dense) is kc_layers.DropConnectDense
    assert dense.rate == pytest.approx(0.3) and dense.units == 4
    assert dense.activation is keras.activations.relu


# -- normalizer and augmentation -------------------------------------------------


def test_normalizer_from_images_takes_raw_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 8, 8, 2)).astype("uint8")
    model = build_cnn((8, 8, 2), 3, depth=1, filters=2, dense_units=4,
                      normalizer=images)
    layer = model.get_layer("normalizer")
    assert isinstance(layer, keras.layers.Normalization)
    assert model.layers[1] is layer
    standardized = np.asarray(layer(images.astype("float32")))
    np.testing.assert_allclose(standardized.mean(axis=(0, 1, 2)), 0.0,
                               atol=1e-4)
    np.testing.assert_allclose(standardized.std(axis=(0, 1, 2)), 1.0,
                               atol=1e-3)
    # The statistics are constructor arguments (kept by clone_model).
    np.testing.assert_allclose(
        np.asarray(layer.get_config()["mean"]),
        images.reshape(-1, 2).mean(axis=0), rtol=1e-5)
    # An adapted layer is used with the same name and statistics.
    adapted = keras.layers.Normalization(axis=-1, name="my_norm")
    adapted.adapt(images.astype("float32"))
    model = build_cnn((8, 8, 2), 3, depth=1, filters=2, normalizer=adapted)
    x = images[:3].astype("float32")
    np.testing.assert_allclose(np.asarray(model.get_layer("my_norm")(x)),
                               np.asarray(adapted(x)), atol=1e-6)
    # A layer built with fixed statistics is used as given.
    fixed = keras.layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0])
    model = build_cnn((8, 8, 2), 3, depth=1, filters=2, normalizer=fixed)
    assert model.layers[1] is fixed


def test_augmentation_only_in_training():
    flip = keras.layers.RandomFlip("horizontal_and_vertical", seed=3)
    model = build_cnn((8, 8, 1), 3, depth=1, filters=2, dense_units=4,
                      augmentation=flip, dropout=0.0, normalization="group")
    assert model.layers[1].name == "augmentation"
    x = np.arange(2 * 64, dtype="float32").reshape(2, 8, 8, 1)
    inference = [np.asarray(model(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = [np.asarray(model(x, training=True)) for _ in range(6)]
    assert any(np.abs(t - inference[0]).max() > 1e-6 for t in training)
    # Without a training flag (what model.export traces) it is off too.
    np.testing.assert_allclose(np.asarray(model(x)), inference[0], atol=1e-6)


# -- training and saving -----------------------------------------------------------


def test_tiny_fit_runs_and_learns_something():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 12, 12, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 127.5).astype("int64")
    y[:2] = [0, 1]
    model = build_cnn((12, 12, 1), 2, depth=1, filters=4, dense_units=8,
                      normalizer=x, batch_size=8, verbose=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.get_layer("block1_conv1").kernel.numpy().copy()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(before, model.get_layer("block1_conv1").kernel)


def test_keras_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (10, 12, 12, 1)).astype("float32")
    augmentation = keras.Sequential(
        [keras.layers.RandomFlip("horizontal"),
         keras.layers.RandomTranslation(0.1, 0.1)], name="aug")
    model = build_cnn((12, 12, 1), 3, depth=2, filters=4, dense_units=8,
                      normalization="group", dropconnect=0.25, max_norm=2.0,
                      l2=1e-4, normalizer=images, augmentation=augmentation,
                      padding=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images, np.arange(10) % 3, batch_size=5, epochs=1, verbose=0)
    path = tmp_path / "cnn.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded.get_layer("block1_norm1")) is \
        keras.layers.GroupNormalization
    assert type(reloaded.get_layer("head_dense")) is kc_layers.DropConnectDense
    assert isinstance(reloaded.get_layer("block2_conv2").kernel.constraint,
                      keras.constraints.MaxNorm)
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), model.predict(images, verbose=0),
        atol=1e-6)
    # keras.models.clone_model (used to rebuild under a strategy) keeps it.
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)
    # The plain Keras export serves the inference path (augmentation off).
    model.export(str(tmp_path / "sm"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(np.asarray(served.serve(images)),
                               model.predict(images, verbose=0), atol=1e-5)


@pytest.mark.parametrize("channels, groups",
                         [(1, 1), (4, 2), (8, 4), (32, 16), (64, 32),
                          (128, 32), (48, 24), (6, 3)])
def test_group_normalization_keeps_two_channels_per_group(channels, groups):
    from kerascnn.models.cnn import group_count

    assert group_count(channels) == groups


def test_group_normalization_groups_per_block():
    model = build_cnn((8, 8, 1), 3, depth=2, filters=16, dense_units=4,
                      normalization="group", verbose=False)
    got = {layer.name: layer.groups for layer in model.layers
           if "_norm" in layer.name}
    assert got == {"block1_norm1": 8, "block1_norm2": 8,
                   "block2_norm1": 16, "block2_norm2": 16}


@pytest.mark.parametrize("shape, expected", [
    ((28, 28, 1), 3),    # 14, 7, 4
    ((32, 32, 3), 3),    # 16, 8, 4
    ((8, 8, 1), 2),      # one halving reaches 4: at least 2 blocks
    ((4, 4, 1), 2),
    ((96, 128, 3), 3),   # capped at 3 blocks
    ((9, 200, 1), 2),    # the short side decides: 5, 3
    ((20, 20, 1), 3),    # 10, 5, 3
])
def test_auto_depth_stops_near_4x4_within_2_to_3_blocks(shape, expected):
    from kerascnn.models import auto_depth

    assert auto_depth(shape) == expected
    shapes = cnn_output_shapes(shape, depth="auto", pooling="strided")
    assert sum(name.endswith("_conv1") for name in shapes) == expected
    model = build_cnn(shape, 3, depth="AUTO", pooling="strided",
                      verbose=False)
    assert model.kerascnn_config["depth"] == expected
    assert model.get_layer(f"block{expected}_conv1") is not None


@pytest.mark.parametrize("bad", ["deep", 0, -1, 2.5, True, None])
def test_depth_names_the_argument_and_value(bad):
    with pytest.raises(ValueError, match=r"`depth` must be an integer >= 1 "
                       r"or 'auto'.*Received: depth="):
        build_cnn((28, 28, 1), 3, depth=bad, verbose=False)
