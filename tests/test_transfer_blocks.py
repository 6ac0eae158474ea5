"""Freezing by block, BatchNorm in inference mode, discriminative rates."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn import transfer


def _small_cnn(num_classes=3):
    inputs = keras.Input((16, 16, 1))
    x = inputs
    for i, filters in enumerate((4, 8, 8), 1):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"c{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"r{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"p{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="out")(x)
    return keras.Model(inputs, outputs)


def _data(n=16):
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 1, (n, 16, 16, 1)).astype("float32"),
            np.arange(n) % 3)


def test_blocks_of_a_small_cnn():
    backbone = transfer.get_backbone(_small_cnn())
    assert [b.layers for b in backbone.blocks] == [
        ("c1", "bn1", "r1"), ("p1", "c2", "bn2", "r2"),
        ("p2", "c3", "bn3", "r3", "p3", "gap")]
    assert [b.resolution for b in backbone.blocks] == [(16, 16), (8, 8),
                                                        None]


def test_set_trainable_blocks_counts_and_errors():
    backbone = transfer.get_backbone(_small_cnn())
    assert transfer.set_trainable_blocks(backbone, 1) == ["block3"]
    # c3's kernel and bias only: bn3 stays frozen.
    assert sorted(v.path for v in backbone.base.trainable_weights) == [
        "c3/bias", "c3/kernel"]
    transfer.set_trainable_blocks(backbone, 1, train_batchnorm=True)
    assert len(backbone.base.trainable_weights) == 4
    assert transfer.set_trainable_blocks(backbone, "all") == [
        "block1", "block2", "block3"]
    assert len(backbone.base.trainable_weights) == 6
    for bad in (-1, 4, 1.5, "some"):
        with pytest.raises(ValueError, match="Received: num_blocks="):
            transfer.set_trainable_blocks(backbone, bad)


def test_batchnorm_statistics_do_not_change_while_fine_tuning():
    backbone = transfer.get_backbone(_small_cnn())
    head = keras.Sequential([keras.Input((8,)),
                             keras.layers.Dense(3, activation="softmax")])
    model = transfer.assemble(backbone, head)
    transfer.unfreeze_backbone(backbone)
    before = {bn.name: [np.array(bn.moving_mean), np.array(bn.moving_variance)]
              for bn in transfer.batchnorm_layers(backbone.base)}
    kernel = np.array(backbone.base.get_layer("c1").kernel)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = _data()
    model.fit(x * 255, y, epochs=2, batch_size=4, verbose=0)
    for bn in transfer.batchnorm_layers(backbone.base):
        np.testing.assert_array_equal(np.array(bn.moving_mean),
                                      before[bn.name][0])
        np.testing.assert_array_equal(np.array(bn.moving_variance),
                                      before[bn.name][1])
    # ...while the convolutions did learn.
    assert np.abs(np.array(backbone.base.get_layer("c1").kernel)
                  - kernel).max() > 1e-4


def test_block_lr_multipliers():
    backbone = transfer.get_backbone(_small_cnn())
    multipliers = transfer.block_lr_multipliers(backbone, 2, 0.5)
    assert multipliers["c3"] == 1.0 and multipliers["bn2"] == 0.5
    assert "c1" not in multipliers
    with pytest.raises(ValueError, match="Received: lr_decay=0.0"):
        transfer.block_lr_multipliers(backbone, 2, 0.0)


def test_discriminative_sgd_scales_each_layer_exactly(tmp_path):
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, use_bias=False, name="low")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(
        1, use_bias=False, name="top")(hidden))
    x = np.array([[1.0, 2.0, -1.0]] * 4, "float32")
    y = np.zeros((4, 1), "float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - y))
    grads = [np.asarray(g) for g in
             tape.gradient(loss, model.trainable_variables)]
    before = [np.array(w) for w in model.get_weights()]
    optimizer = transfer.discriminative_optimizer(
        keras.optimizers.SGD(0.1), {"low": 0.25})
    assert isinstance(optimizer, transfer.DiscriminativeSGD)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    after = model.get_weights()
    np.testing.assert_allclose(before[0] - after[0], 0.025 * grads[0],
                               rtol=1e-4)
    np.testing.assert_allclose(before[1] - after[1], 0.1 * grads[1],
                               rtol=1e-4)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, transfer.DiscriminativeSGD)
    assert loaded.optimizer.lr_multipliers == {"low": 0.25}


def test_discriminative_adam_freezes_with_zero():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(2, name="low")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="top")(hidden))
    before = [np.array(w) for w in model.get_weights()]
    model.compile(optimizer=transfer.discriminative_optimizer(
        "adam", {"low": 0.0}), loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=2, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    assert np.abs(after[2] - before[2]).max() > 1e-4


@pytest.mark.parametrize("bad", [{"low": -1}, ["low"], {"low": "x"}])
def test_discriminative_rejects_bad_multipliers(bad):
    with pytest.raises(ValueError, match="Received: lr_multipliers="):
        transfer.discriminative_optimizer("sgd", bad)


def test_discriminative_rejects_unknown_optimizer():
    with pytest.raises(ValueError, match="Received: optimizer='lamb'"):
        transfer.discriminative_optimizer("lamb", {})
