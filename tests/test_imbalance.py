"""Tests for kerascnn.data.imbalance: class weights and imbalance checks."""

import numpy as np
import pytest

from kerascnn.data import (class_counts, class_weights, detect_imbalance,
                           imbalance_ratio)

LABELS = np.repeat([0, 1, 2], [60, 30, 10])


def test_balanced_matches_sklearn_formula():
    weights = class_weights(LABELS)
    # n / (k * n_c) = 100 / (3 * n_c)
    assert weights == pytest.approx({0: 100 / 180, 1: 100 / 90, 2: 100 / 30})
    # Mean weight per sample is 1.
    assert sum(weights[c] * n for c, n in enumerate([60, 30, 10])) \
        == pytest.approx(100)


def test_effective_number_hand_computed():
    beta = 0.9
    weights = class_weights(LABELS, method="effective_number", beta=beta)
    raw = np.array([(1 - beta) / (1 - beta ** n) for n in (60, 30, 10)])
    raw *= 100 / np.sum(raw * [60, 30, 10])
    assert [weights[c] for c in range(3)] == pytest.approx(raw)
    # beta = 0.9: 1 - 0.9**10 = 0.6513 -> raw ~ [0.1000, 0.1044, 0.1535]
    assert weights[2] / weights[0] == pytest.approx(
        (1 - beta ** 60) / (1 - beta ** 10))
    by_class = class_weights(LABELS, method="effective_number", beta=beta,
                             normalize="classes")
    assert sum(by_class.values()) == pytest.approx(3.0)
    assert by_class[2] / by_class[0] == pytest.approx(weights[2] / weights[0])


def test_effective_number_limits():
    equal = class_weights(LABELS, method="effective_number", beta=0.0)
    assert equal == pytest.approx({0: 1.0, 1: 1.0, 2: 1.0})
    near_balanced = class_weights(LABELS, method="effective_number",
                                  beta=1 - 1e-9)
    assert near_balanced == pytest.approx(class_weights(LABELS), rel=1e-5)
    # Default beta=0.999 tempers the inverse frequency.
    default = class_weights(LABELS, method="effective_number")
    balanced = class_weights(LABELS)
    assert 1.0 < default[2] / default[0] < balanced[2] / balanced[0]


def test_num_classes_and_missing_class():
    labels = np.array([0, 0, 0, 2])
    weights = class_weights(labels, num_classes=4)
    assert sorted(weights) == [0, 1, 2, 3]
    assert weights[1] == 1.0 and weights[3] == 1.0
    assert weights[0] == pytest.approx(4 / 6) and weights[2] == pytest.approx(2.0)
    np.testing.assert_array_equal(class_counts(labels, num_classes=4),
                                  [3, 0, 1, 0])
    assert imbalance_ratio(labels) == 3.0  # over classes present
    assert imbalance_ratio(labels, num_classes=4) == float("inf")
    one_hot = np.eye(3)[LABELS]
    assert class_weights(one_hot) == pytest.approx(class_weights(LABELS))


def test_weights_work_in_fit():
    import keras

    x = np.random.default_rng(0).normal(size=(100, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    history = model.fit(x, LABELS, class_weight=class_weights(LABELS),
                        epochs=1, batch_size=50, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_imbalance_ratio_and_detection(capsys):
    assert imbalance_ratio(LABELS) == 6.0
    assert imbalance_ratio(np.repeat([0, 1], [5, 5])) == 1.0
    assert detect_imbalance(LABELS, threshold=3.0) is True
    note = capsys.readouterr().out
    assert "ratio 6.0 > threshold 3" in note
    assert "class 0 has 60 samples, class 2 has 10" in note
    assert "class_weight" in note and "macro F1" in note
    assert detect_imbalance(LABELS, threshold=6.0) is False
    assert capsys.readouterr().out == ""
    assert detect_imbalance(LABELS, threshold=2.0, verbose=False) is True
    assert capsys.readouterr().out == ""
    severe = np.repeat([0, 1], [200, 10])
    assert detect_imbalance(severe)
    assert "sampling='oversample'" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "inverse"}, "Received: method='inverse'"),
    ({"method": "effective_number", "beta": 1.0}, "Received: beta=1.0"),
    ({"beta": -0.5}, "Received: beta=-0.5"),
    ({"normalize": "sum"}, "Received: normalize='sum'"),
    ({"num_classes": 2}, "Received: labels from 0 to 2"),
    ({"num_classes": 1}, "Received: num_classes=1"),
])
def test_class_weights_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        class_weights(LABELS, **kwargs)


def test_detect_rejects():
    with pytest.raises(ValueError, match="Received: threshold=0.5"):
        detect_imbalance(LABELS, threshold=0.5)
    with pytest.raises(ValueError, match="Received: verbose=1"):
        detect_imbalance(LABELS, verbose=1)
    with pytest.raises(ValueError, match="Received: only class 1"):
        imbalance_ratio([1, 1, 1])
