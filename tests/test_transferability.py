"""LogME, LEEP and `transfer.rank` (kerascnn.transfer.scores)."""

import warnings

import keras
import numpy as np
import pytest

from kerascnn import transfer
from kerascnn.transfer import scores


def _logme_reference(features, labels):
    """LogME written from the paper's equations (You et al. 2021, Alg. 1).

    Direct D x D matrices: A = alpha I + beta F'F, m = beta A^-1 F'y,
    gamma = sum beta s / (alpha + beta s), alpha = gamma / m'm,
    beta = (n - gamma) / |Fm - y|^2, and the evidence
    n/2 log beta + d/2 log alpha - n/2 log 2pi - beta/2 |Fm - y|^2
    - alpha/2 m'm - 1/2 log|A|, divided by n, averaged over classes.
    """
    f = np.asarray(features, "float64")
    n, d = f.shape
    ftf = f.T @ f
    s = np.linalg.eigvalsh(ftf)
    result = []
    for k in np.unique(labels):
        y = (labels == k).astype("float64")
        alpha, beta = 1.0, 1.0
        for _ in range(1000):
            a = alpha * np.eye(d) + beta * ftf
            m = beta * np.linalg.solve(a, f.T @ y)
            gamma = np.sum(beta * s / (alpha + beta * s))
            new_alpha = gamma / (m @ m)
            new_beta = (n - gamma) / np.sum((f @ m - y) ** 2)
            done = (abs(new_alpha - alpha) / alpha
                    + abs(new_beta - beta) / beta) < 1e-10
            alpha, beta = new_alpha, new_beta
            if done:
                break
        a = alpha * np.eye(d) + beta * ftf
        m = beta * np.linalg.solve(a, f.T @ y)
        evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha)
                    - n / 2 * np.log(2 * np.pi)
                    - beta / 2 * np.sum((f @ m - y) ** 2)
                    - alpha / 2 * (m @ m) - np.linalg.slogdet(a)[1] / 2)
        result.append(evidence / n)
    return float(np.mean(result))


@pytest.mark.parametrize("n,d", [(60, 5), (200, 12)])
def test_logme_matches_numpy_reference(n, d):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 3, n)
    features = rng.normal(size=(n, d))
    features[:, :3] += 1.5 * np.eye(3)[labels]
    assert scores.logme(features, labels, tolerance=1e-12) == pytest.approx(
        _logme_reference(features, labels), rel=1e-6, abs=1e-8)


def test_logme_prefers_features_that_carry_the_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    noise = rng.normal(size=(100, 8))
    informative = noise.copy()
    informative[:, :4] += 3 * np.eye(4)[labels]
    assert transfer.logme(informative, labels) > transfer.logme(noise, labels)


def test_logme_works_with_more_dimensions_than_samples():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 10)
    features = rng.normal(size=(20, 50))
    features[:, 0] += 4 * labels
    value = transfer.logme(features, labels)
    assert np.isfinite(value)
    assert value > transfer.logme(rng.normal(size=(20, 50)), labels)


def test_logme_of_labels_in_the_span_of_the_features_is_finite():
    # 10 rows, 40 dimensions: the labels are fitted exactly, beta grows
    # without bound and n - gamma reached 0.0 (ZeroDivisionError before).
    features = np.random.default_rng(0).normal(size=(10, 40))
    labels = np.arange(10) % 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = transfer.logme(features, labels)
    assert np.isfinite(value)
    assert value == pytest.approx(transfer.logme(features, labels,
                                                 max_iterations=80),
                                  rel=1e-3)


def test_leep_hand_computed():
    theta = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]])
    labels = np.array([0, 0, 1])
    # joint P(y, z) = sum of theta rows per y, / 3
    joint = np.array([[1.2, 0.8], [0.1, 0.9]]) / 3
    cond = joint / joint.sum(0)  # P(y | z)
    expected = np.mean(np.log([
        cond[0, 0] * 0.8 + cond[0, 1] * 0.2,
        cond[0, 0] * 0.4 + cond[0, 1] * 0.6,
        cond[1, 0] * 0.1 + cond[1, 1] * 0.9]))
    assert transfer.leep(theta, labels) == pytest.approx(expected, rel=1e-12)
    # A source whose classes map one-to-one onto the target's is perfect.
    assert transfer.leep(np.eye(2)[[0, 0, 1]], labels) == pytest.approx(0.0)


@pytest.mark.parametrize("bad", [np.ones((3, 2)), np.array([[0.5, 0.6],
                                                              [1.0, 0.0]])])
def test_leep_rejects_non_probabilities(bad):
    with pytest.raises(ValueError, match="Received: source_probabilities="):
        transfer.leep(bad, np.zeros(len(bad), int))


def test_scores_reject_bad_input():
    with pytest.raises(ValueError, match="Received: features="):
        transfer.logme(np.ones(5), np.zeros(5, int))
    with pytest.raises(ValueError, match="two classes"):
        transfer.logme(np.ones((5, 2)), np.zeros(5, int))
    with pytest.raises(ValueError, match="Received: score="):
        transfer.rank({"a": np.ones((4, 2))}, None, [0, 1, 0, 1],
                      score="h-score")


def test_rank_feature_arrays_that_do_and_do_not_carry_the_labels():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 20)
    good = rng.normal(size=(60, 6)) + 2 * np.eye(3, 6)[labels]
    ranking = transfer.rank({"noise": rng.normal(size=(60, 6)),
                             "good": good}, None, labels)
    assert ranking.names == ["good", "noise"]
    assert ranking.best == "good"
    assert "1. good" in ranking.summary()


def _tiny_classifier(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"tiny{seed}")


def test_rank_models_and_blocks_without_training():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 8)
    x = rng.uniform(0, 50, (16, 8, 8, 1)).astype("float32")
    x[y == 1, :4] += 200  # the label is in the pixels' layout
    models = {"a": _tiny_classifier(0), "b": _tiny_classifier(1)}
    before = [m.get_weights() for m in models.values()]
    by_logme = transfer.rank(models, x, y)
    assert sorted(by_logme.names) == ["a", "b"]
    by_leep = transfer.rank(models, x, y, score="leep")
    assert all(v <= 0 for v in by_leep.scores.values())
    backbone = transfer.get_backbone(models["a"])
    by_block = transfer.rank(backbone, x, y, blocks=True)
    assert len(by_block.names) == len(backbone.blocks)
    for model, weights in zip(models.values(), before):
        for w, w0 in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(w, w0)
    with pytest.raises(ValueError, match="score=\"leep\""):
        transfer.rank({"bb": backbone}, x, y, score="leep")
