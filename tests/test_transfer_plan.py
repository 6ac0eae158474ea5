"""recommend / TransferPlan, the linear probe's Dense layer, the feature
cache, and fit's argument checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from kerascnn import transfer


def _cnn(num_classes=3):
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="r1")(x)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="r2")(x)
    x = keras.layers.MaxPooling2D(name="p2")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes,
                                                  name="out")(x))


@pytest.fixture
def backbone():
    return transfer.get_backbone(_cnn())


def _data(n=24, classes=3):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = rng.uniform(0, 80, (n, 12, 12, 1)) + 40 * y[:, None, None, None]
    return x.astype("float32"), y


@pytest.mark.parametrize(
    "similar, large, cell, strategy, head, frozen, tuned",
    [(True, False, "similar-small", "linear_head", "logistic",
      ["block1", "block2", "block3"], []),
     (True, True, "similar-large", "fine_tune_top", "dense",
      ["block1"], ["block2", "block3"]),
     (False, False, "dissimilar-small", "linear_probe", "svm",
      ["block1", "block2", "block3"], []),
     (False, True, "dissimilar-large", "fine_tune_all", "dense",
      [], ["block1", "block2", "block3"])])
def test_the_table(backbone, similar, large, cell, strategy, head, frozen,
                   tuned):
    plan = transfer.recommend(backbone, similar=similar, large=large,
                              learning_rate=0.01)
    assert (plan.cell, plan.strategy, plan.head) == (cell, strategy, head)
    assert plan.frozen_blocks == frozen and plan.fine_tuned_blocks == tuned
    assert plan.head_learning_rate == 0.01
    if tuned:
        assert plan.fine_tune_learning_rate == pytest.approx(0.001)
        assert [p.name for p in plan.phases] == ["head", "fine-tune"]
        assert plan.phases[-1].trainable_blocks == len(tuned)
        assert "BatchNormalization" in plan.summary()
    else:
        assert plan.fine_tune_learning_rate is None
        assert len(plan.phases) == 1 and plan.phases[0].cached
        assert plan.phases[0].learning_rate is None  # scikit-learn
    assert cell in plan.summary() and plan.to_dict()["cell"] == cell


def test_size_from_images_per_class(backbone):
    y = np.repeat([0, 1, 2], 5)
    small = transfer.recommend(backbone, labels=y, similar=True,
                               large_threshold=6)
    large = transfer.recommend(backbone, labels=y, similar=True,
                               large_threshold=5)
    assert not small.large and large.large
    assert small.images_per_class == 5.0
    assert "5 images per class" in small.reasons[0]
    assert "threshold of 6" in small.reasons[0]


def _score(cosine, distance):
    return transfer.Similarity(cosine, distance, "bn2", "source sample",
                               np.ones(3), np.ones(3))


def test_similarity_thresholds_decide(backbone):
    score = _score(0.99, 0.2)
    y = np.repeat([0, 1], 4)
    assert transfer.recommend(backbone, labels=y,
                              similarity=score).similar
    assert not transfer.recommend(backbone, labels=y, similarity=score,
                                  distance_threshold=0.1).similar
    assert not transfer.recommend(backbone, labels=y, similarity=score,
                                  cosine_threshold=0.995).similar
    assert "cosine similarity 0.990" in transfer.recommend(
        backbone, labels=y, similarity=score).summary()


@pytest.mark.parametrize("cosine, distance, similar", [
    (0.975, 0.25, True),    # both exactly at the default thresholds
    (0.9749, 0.25, False),  # cosine just under
    (0.975, 0.2501, False),  # distance just over
    (0.955, 0.19, False),   # rotated digits (calibration, docs/evidence.md)
    (0.994, 0.14, True),    # digits 5-9 against a 0-4 source
])
def test_default_threshold_boundaries(backbone, cosine, distance, similar):
    y = np.repeat([0, 1], 4)
    plan = transfer.recommend(backbone, labels=y,
                              similarity=_score(cosine, distance))
    assert plan.similar is similar
    assert plan.cell == ("similar" if similar else "dissimilar") + "-small"


def test_size_threshold_boundary(backbone):
    score = _score(0.99, 0.1)
    assert transfer.recommend(backbone, labels=np.repeat([0, 1], 6),
                              similarity=score, large_threshold=6).large
    assert not transfer.recommend(backbone, labels=np.repeat([0, 1], 5),
                                  similarity=score, large_threshold=6).large


def test_gradual_unfreezing_and_discriminative_phases(backbone):
    plan = transfer.recommend(backbone, similar=True, large=True,
                              gradual_unfreeze_every=2, lr_decay=0.5)
    assert [(p.name, p.trainable_blocks) for p in plan.phases] == [
        ("head", 0), ("unfreeze-1", 1), ("fine-tune", 2)]
    assert plan.lr_decay == 0.5 and plan.gradual_unfreeze_every == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"large_threshold": 0}, "Received: large_threshold=0"),
    ({"cosine_threshold": 2.0}, "Received: cosine_threshold=2.0"),
    ({"learning_rate": -1.0}, "Received: learning_rate=-1.0"),
    ({"fine_tune_factor": 0.0}, "Received: fine_tune_factor=0.0"),
    ({"head": "tree"}, "Received: head='tree'"),
    ({"lr_decay": 1.5}, "Received: lr_decay=1.5"),
    ({"gradual_unfreeze_every": 0}, "Received: gradual_unfreeze_every=0"),
    ({"similar": "yes"}, "Received: similar='yes'"),
])
def test_recommend_rejects_bad_arguments(backbone, kwargs, match):
    arguments = {"similar": True, "large": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        transfer.recommend(backbone, **arguments)


def test_one_class_target_is_rejected(backbone):
    x = np.zeros((6, 12, 12, 1), "float32")
    with pytest.raises(ValueError, match="Received: only class 2"):
        transfer.recommend(backbone, x, np.full(6, 2))
    with pytest.raises(ValueError, match="Received: only class 0"):
        transfer.fit(backbone, x, np.zeros(6, int))


def test_vgg_needs_a_source_sample():
    backbone = transfer.get_backbone("vgg16", input_shape=(32, 32, 3),
                                     weights=None)
    x = np.zeros((2, 32, 32, 3), "float32")
    with pytest.raises(ValueError,
                       match="no BatchNormalization.*Received: "
                             "source_images=None"):
        transfer.measure_similarity(backbone, x)
    score = transfer.measure_similarity(backbone, x + 10, x + 10)
    assert score.cosine == pytest.approx(1.0)
    assert score.distance == pytest.approx(0.0, abs=1e-6)


def test_similarity_batchnorm_route_by_hand(backbone):
    x, _ = _data()
    bn = backbone.base.get_layer("bn2")
    features = keras.Model(backbone.base.inputs, bn.input)
    mean = np.asarray(features(x)).reshape(-1, 6).mean(axis=0)
    bn.moving_mean.assign(mean.astype("float32"))
    bn.moving_variance.assign(np.full(6, 4.0, "float32"))
    score = transfer.measure_similarity(backbone, x)
    assert score.route == "batchnorm statistics" and score.layer == "bn2"
    assert score.cosine == pytest.approx(1.0, abs=1e-6)
    assert score.distance == pytest.approx(0.0, abs=1e-5)
    bn.moving_mean.assign((mean + 2.0).astype("float32"))
    shifted = transfer.measure_similarity(backbone, x)
    # Every channel 2 away, in units of the source std (2): distance 1.
    assert shifted.distance == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ValueError, match="Received: layer='c2'"):
        transfer.measure_similarity(backbone, x, layer="c2")
    with pytest.raises(ValueError, match="Received: target_images="):
        transfer.measure_similarity(backbone, np.zeros((2, 8, 8, 1)))


@pytest.mark.parametrize("kind, classes", [("svm", 3), ("logistic", 3),
                                           ("logistic", 2), ("svm", 2)])
def test_dense_from_linear_matches_scikit_learn(kind, classes):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (40, 5))
    y = np.arange(40) % classes
    x[:, 0] += y
    scaler = StandardScaler().fit(x)
    estimator = (LinearSVC(random_state=0) if kind == "svm"
                 else LogisticRegression()).fit(scaler.transform(x), y)
    layer = transfer.dense_from_linear(estimator, scaler)
    out = np.asarray(layer(x.astype("float32")))
    np.testing.assert_array_equal(out.argmax(-1),
                                  estimator.predict(scaler.transform(x)))
    if kind == "logistic":
        np.testing.assert_allclose(
            out, estimator.predict_proba(scaler.transform(x)), rtol=1e-4,
            atol=1e-5)


def test_cached_head_equals_assembled_model_and_exports(backbone, tmp_path):
    x, y = _data()
    result = transfer.fit_cached_head(backbone, x[:18], y[:18],
                                      (x[18:], y[18:]), epochs=3,
                                      batch_size=6)
    assert len(result.history["loss"]) <= 3
    pooled = transfer.extract_features(
        transfer.feature_cache.pooled_feature_model(backbone), x)
    expected = result.head.predict(pooled, verbose=0)
    np.testing.assert_allclose(result.model.predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    result.model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    result.model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(np.asarray(reloaded.serve(x)), expected,
                               rtol=1e-5, atol=1e-6)


def test_fit_fine_tunes_with_gradual_and_discriminative(backbone, tmp_path):
    x, y = _data(30)
    bn_before = np.array(backbone.base.get_layer("bn1").moving_mean)
    c1_before = np.array(backbone.base.get_layer("c1").kernel)
    c3_before = np.array(backbone.base.get_layer("c3").kernel)
    result = transfer.fit(backbone, x, y, similar=True, large=True,
                          gradual_unfreeze_every=1, lr_decay=0.5, epochs=2,
                          head_epochs=2, batch_size=8, learning_rate=0.01)
    assert list(result.history) == ["head", "unfreeze-1", "fine-tune"]
    assert len(result.history["unfreeze-1"]["loss"]) == 1
    np.testing.assert_array_equal(
        np.array(backbone.base.get_layer("bn1").moving_mean), bn_before)
    # block1 (c1) stays frozen for similar-large; the top block learned.
    np.testing.assert_array_equal(
        np.array(backbone.base.get_layer("c1").kernel), c1_before)
    assert np.abs(np.array(backbone.base.get_layer("c3").kernel)
                  - c3_before).max() > 0
    assert 0.0 <= result.val_accuracy <= 1.0
    assert "Validation accuracy" in result.summary()
    result.model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               result.model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "Received: epochs=0"),
    ({"batch_size": 0}, "Received: batch_size=0"),
    ({"augment": "flip"}, "Received: augment='flip'"),
    ({"copies": -1}, "Received: copies=-1"),
    ({"callbacks": "History"}, "Received: callbacks='History'"),
    ({"precision": "float8"}, "Received: precision='float8'"),
    ({"jit_compile": "yes"}, "Received: jit_compile='yes'"),
    ({"steps_per_execution": 0}, "Received: steps_per_execution=0"),
    ({"validation_split": 1.0}, "Received: validation_split=1.0"),
    ({"plan": "freeze"}, "Received: plan='freeze'"),
    ({"head_epochs": 0}, "Received: head_epochs=0"),
])
def test_fit_rejects_bad_arguments(backbone, kwargs, match):
    x, y = _data()
    with pytest.raises(ValueError, match=match):
        transfer.fit(backbone, x, y, similar=True, large=False, **kwargs)


def test_fit_rejects_images_of_the_wrong_shape(backbone):
    with pytest.raises(ValueError, match=r"Received: x='images of shape "
                                         r"\(4, 10, 10, 1\)"):
        transfer.fit(backbone, np.zeros((4, 10, 10, 1)), [0, 1, 0, 1])


def test_dense_from_linear_with_global_scaling():
    from kerascnn.transfer.linear_probe import _GlobalScaler

    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 3.0, (30, 4))
    y = np.arange(30) % 3
    x[:, 1] += 2 * y
    scaler = _GlobalScaler().fit(x)
    np.testing.assert_allclose(scaler.transform(x), x / np.std(x))
    estimator = LogisticRegression().fit(scaler.transform(x), y)
    out = np.asarray(transfer.dense_from_linear(estimator, scaler)(
        x.astype("float32")))
    np.testing.assert_allclose(out, estimator.predict_proba(
        scaler.transform(x)), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="Received: scaling='minmax'"):
        transfer.fit_linear_probe(None, x, y, x, y, scaling="minmax")


def test_linear_classifier_plans_are_the_small_target_ones():
    from kerascnn.transfer.plan import TransferPlan

    assert TransferPlan(strategy="linear_head", head="logistic").linear_classifier
    assert TransferPlan(strategy="linear_probe", head="svm").linear_classifier
    assert not TransferPlan(strategy="linear_head", head="dense").linear_classifier
    assert not TransferPlan(strategy="fine_tune_top", head="dense").linear_classifier
