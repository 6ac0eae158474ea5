"""`transfer.fit(strategy=...)` under `tf.distribute`.

A 2-replica `MirroredStrategy` over the two logical CPUs of conftest.py
stands for several GPUs. Backbones are tiny own models on 16x16x1 images.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn import transfer
from kerascnn.transfer import registry


def _source(shape=(16, 16, 1), classes=3, batchnorm=False):
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    if batchnorm:  # its statistics stand for the source data
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _images(n_per_class=6, shape=(16, 16, 1), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.uniform(0, 60, (len(y),) + shape).astype("float32")
    for c in range(classes):
        x[y == c, c * 5:c * 5 + 5] += 150  # a bright band per class
    return x, y


def _on(strategy, variables):
    return all(getattr(v.value, "distribute_strategy", None) is strategy
               for v in variables)


@pytest.fixture
def built_under(monkeypatch):
    """Makes "tinynet" a registry name (a tiny own model); records the
    strategy in scope at each build."""
    strategies = []
    real = registry.get_backbone

    def get_backbone(name, input_shape=None, weights="imagenet", **kwargs):
        strategies.append(tf.distribute.get_strategy())
        assert name == "tinynet" and weights is None
        return real(_source(), input_shape=input_shape)

    monkeypatch.setattr(registry, "get_backbone", get_backbone)
    return strategies


def test_fine_tuning_runs_on_two_replicas(two_cpu_strategy, built_under,
                                          capsys):
    x, y = _images()
    result = transfer.fit("tinynet", x, y, similar=True, large=True,
                          weights=None, epochs=1, head_epochs=1,
                          head_patience=0, batch_size=4,
                          strategy=two_cpu_strategy, verbose=2)
    # A registry name: built once to measure the data (recommend), then
    # again inside the strategy's scope for the Keras phases.
    assert built_under[0] is not two_cpu_strategy
    assert built_under[-1] is two_cpu_strategy and len(built_under) == 2
    line = "MirroredStrategy: 1 worker, 2 replicas, global batch 8 (4 per " \
           "replica)"
    assert line in capsys.readouterr().out
    assert result.strategy == line
    assert (result.replicas, result.batch_size) == (2, 8)
    assert f"Trained with {line}." in result.summary()
    assert result.to_dict()["replicas"] == 2
    assert list(result.history) == ["head", "fine-tune"]
    # Backbone, head and optimizer state: every variable is mirrored.
    assert _on(two_cpu_strategy, result.model.weights)
    assert _on(two_cpu_strategy, result.backbone.base.weights)
    assert _on(two_cpu_strategy, result.model.optimizer.variables)
    probabilities = result.model.predict(x, verbose=0)
    assert probabilities.shape == (18, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    assert 0.0 <= result.val_accuracy <= 1.0


def test_registry_name_with_a_plan_is_built_once_in_scope(
        two_cpu_strategy, built_under, monkeypatch):
    import sys

    x, y = _images()
    plan = transfer.recommend(registry.get_backbone("tinynet", weights=None,
                                                    input_shape=x.shape[1:]),
                              x, y, similar=True, large=True)
    built_under.clear()
    seen = []

    def no_training(backbone, *args):  # only the building is checked here
        seen.append(backbone)
        return None, {}, None, None

    monkeypatch.setattr(sys.modules["kerascnn.transfer.fit"], "_fine_tune",
                        no_training)
    transfer.fit("tinynet", x, y, plan=plan, weights=None,
                 strategy=two_cpu_strategy)
    assert built_under == [two_cpu_strategy]
    assert _on(two_cpu_strategy, seen[0].base.weights)


def test_given_backbone_is_cloned_into_the_scope(two_cpu_strategy):
    x, y = _images()
    backbone = transfer.get_backbone(_source())
    before = [w.copy() for w in backbone.base.get_weights()]
    plan = transfer.recommend(backbone, x, y, similar=True, large=True,
                              lr_decay=0.5)
    result = transfer.fit(backbone, x, y, plan=plan, epochs=1, head_epochs=1,
                          head_patience=0, batch_size=3,
                          strategy=two_cpu_strategy)
    clone = result.backbone
    assert clone is not backbone
    assert clone.blocks == backbone.blocks and clone.name == backbone.name
    assert _on(two_cpu_strategy, clone.base.weights)
    assert not _on(two_cpu_strategy, backbone.base.weights)
    for old, new in zip(before, backbone.base.get_weights()):
        np.testing.assert_array_equal(old, new)  # the given one is untouched
    assert result.batch_size == 6
    assert result.model.predict(x[:5], verbose=0).shape == (5, 3)


def test_small_target_under_the_strategy_is_not_distributed(
        two_cpu_strategy, capsys):
    x, y = _images()
    result = transfer.fit(_source(), x, y, source_images=x, augment="none",
                          strategy=two_cpu_strategy, verbose=1)
    assert "does not distribute" in capsys.readouterr().out
    assert result.plan.cell == "similar-small"
    assert result.strategy is None and result.replicas == 1
    assert result.batch_size is None
    assert 0.0 <= result.cv_accuracy <= 1.0
    assert result.model.predict(x, verbose=0).shape == (18, 3)


def test_bad_strategy_is_named_before_any_work(monkeypatch):
    def no_backbone(*args, **kwargs):
        raise AssertionError("built a backbone")

    monkeypatch.setattr(registry, "get_backbone", no_backbone)
    with pytest.raises(ValueError, match=r"Argument `strategy` must be one "
                       r"of 'auto'. Received: strategy='bogus'"):
        transfer.fit("resnet50", "no/such/folder", strategy="bogus")
    with pytest.raises(ValueError, match="Received: strategy=3"):
        transfer.fit("resnet50", "no/such/folder", strategy=3)
