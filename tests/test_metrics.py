"""Tests for kerascnn.data.classification_report against hand-computed cases."""

import json

import numpy as np
import pytest
from PIL import Image

from kerascnn.data import ClassificationReport, classification_report

Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PROB = np.array([
    [0.8, 0.1, 0.1],  # 0 -> 0
    [0.6, 0.3, 0.1],  # 0 -> 0
    [0.3, 0.6, 0.1],  # 0 -> 1
    [0.2, 0.7, 0.1],  # 1 -> 1
    [0.1, 0.3, 0.6],  # 1 -> 2
    [0.1, 0.2, 0.7],  # 2 -> 2
])


@pytest.fixture
def report():
    return classification_report(Y_TRUE, Y_PROB, class_names=["a", "b", "c"])


def test_hand_computed_numbers(report):
    assert isinstance(report, ClassificationReport)
    np.testing.assert_array_equal(report.confusion_matrix,
                                  [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert report.precision == pytest.approx([1.0, 0.5, 0.5])
    assert report.recall == pytest.approx([2 / 3, 0.5, 1.0])
    assert report.f1 == pytest.approx([0.8, 0.5, 2 / 3])
    assert report.support == [3, 2, 1]
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report.weighted_f1 == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    # ROC AUC class b: positives 0.7, 0.3 vs negatives .1 .3 .6 .2 ->
    # (4 + 2.5) / 8 = 0.8125; classes a and c are separated perfectly.
    assert report.per_class_roc_auc == pytest.approx([1.0, 0.8125, 1.0])
    assert report.roc_auc == pytest.approx((2 + 0.8125) / 3)
    # Average precision class b: 0.5 * 1 + 0.5 * 0.5 = 0.75.
    assert report.per_class_pr_auc == pytest.approx([1.0, 0.75, 1.0])
    assert report.pr_auc == pytest.approx(2.75 / 3)


def test_most_confused(report):
    assert report.most_confused() == [("a", "b", 1), ("b", "c", 1)]
    assert report.most_confused(k=1) == [("a", "b", 1)]
    with pytest.raises(ValueError, match="Received: k=0"):
        report.most_confused(k=0)


def test_summary_and_dict(report):
    text = report.summary()
    assert "0.8000" in text and "0.6667" in text and "0.8125" not in text
    assert "0.9375" in text  # macro ROC AUC
    assert "a -> b: 1" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert data["class_names"] == ["a", "b", "c"]
    assert data["roc_auc"] == pytest.approx(0.9375)
    assert data["most_confused"] == [["a", "b", 1], ["b", "c", 1]]
    assert json.loads(report.to_json())["accuracy"] == pytest.approx(4 / 6)


def test_plot_confusion_matrix(report, tmp_path):
    path = report.plot_confusion_matrix(tmp_path / "cm.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= 300
    normalized = report.plot_confusion_matrix(str(tmp_path / "cmn.png"),
                                              normalize=True, title="t")
    assert normalized.endswith("cmn.png")
    with pytest.raises(ValueError, match="Received: normalize='yes'"):
        report.plot_confusion_matrix(tmp_path / "x.png", normalize="yes")


def test_matches_sklearn_on_random_data():
    from sklearn import metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y]
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    report = classification_report(y, prob)
    assert report.class_names == ["0", "1", "2", "3"]
    assert report.roc_auc == pytest.approx(metrics.roc_auc_score(
        y, prob, multi_class="ovr", average="macro"))
    assert report.pr_auc == pytest.approx(metrics.average_precision_score(
        np.eye(4)[y], prob, average="macro"))
    assert report.macro_f1 == pytest.approx(metrics.f1_score(
        y, prob.argmax(1), average="macro"))
    assert report.weighted_f1 == pytest.approx(metrics.f1_score(
        y, prob.argmax(1), average="weighted"))
    assert report.accuracy == pytest.approx(metrics.accuracy_score(
        y, prob.argmax(1)))


def test_absent_class_predictions_only_and_sigmoid():
    # Class 2 never occurs in y_true: its AUCs are undefined and skipped.
    y = np.array([0, 1, 0, 1])
    prob = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.4, 0.1, 0.5],
                     [0.3, 0.6, 0.1]])
    report = classification_report(y, prob)
    assert report.per_class_roc_auc[2] is None
    assert report.per_class_roc_auc[:2] == pytest.approx([1.0, 1.0])
    assert report.roc_auc == pytest.approx(1.0)
    assert report.support == [2, 2, 0]
    # Class 2 was predicted once (wrongly), so it counts in macro F1.
    assert report.f1 == pytest.approx([2 / 3, 1.0, 0.0])
    assert report.macro_f1 == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    # Predicted class indices: no AUCs.
    labels_only = classification_report(y, np.array([0, 1, 1, 1]))
    assert labels_only.roc_auc is None and labels_only.pr_auc is None
    assert labels_only.recall == pytest.approx([0.5, 1.0])
    assert labels_only.to_dict()["roc_auc"] is None
    assert "n/a" in labels_only.summary()
    # A sigmoid column is read as P(class 1).
    sigmoid = classification_report([0, 0, 1, 1], [[0.1], [0.6], [0.4],
                                                    [0.9]])
    np.testing.assert_array_equal(sigmoid.confusion_matrix, [[1, 1], [1, 1]])
    assert sigmoid.roc_auc == pytest.approx(0.75)


@pytest.mark.parametrize("y_true, y_prob, kwargs, match", [
    (Y_TRUE, Y_PROB[:5], {}, "Received: 6 labels and 5 predictions"),
    (Y_TRUE, Y_PROB, {"class_names": ["a", "b"]},
     r"Received: y_prob of shape \(6, 3\)"),
    (Y_TRUE, Y_PROB, {"class_names": ["a", "a", "b"]},
     "Received: class_names="),
    (Y_TRUE - 1, Y_PROB, {}, "Received: y_true="),
    (Y_TRUE, np.full((6, 3), np.nan), {}, "Received: y_prob="),
    (Y_TRUE, np.linspace(0, 1, 6), {}, "Received: y_prob="),
    (Y_TRUE, np.array([0, 1, 2, -1, 0, 0]), {}, "Received: y_prob="),
])
def test_rejects_bad_input(y_true, y_prob, kwargs, match):
    with pytest.raises(ValueError, match=match):
        classification_report(y_true, y_prob, **kwargs)
