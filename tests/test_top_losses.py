"""Error analysis: the highest-loss images and per-class error counts."""

import matplotlib
import numpy as np
import pytest

from kerascnn import ArgumentError
from kerascnn.data.metrics import (classification_report, plot_top_losses,
                                   top_losses)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _case():
    y_true = np.array([0, 1, 2, 1, 0])
    y_prob = np.array([[0.9, 0.05, 0.05],   # right, loss 0.105
                       [0.7, 0.2, 0.1],     # wrong, loss 1.609
                       [0.1, 0.1, 0.8],     # right, loss 0.223
                       [0.05, 0.05, 0.9],   # wrong, loss 3.0
                       [0.6, 0.3, 0.1]])    # right, loss 0.511
    return y_true, y_prob


def test_top_losses_order_and_values():
    y_true, y_prob = _case()
    indices, losses = top_losses(y_true, y_prob, k=3)
    assert indices.tolist() == [3, 1, 4]
    np.testing.assert_allclose(losses, -np.log([0.05, 0.2, 0.6]))
    assert top_losses(y_true, y_prob, k=16)[0].tolist() == [3, 1, 4, 2, 0]


def test_plot_top_losses_writes_png_and_keeps_backend(tmp_path):
    y_true, y_prob = _case()
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1))
    backend = matplotlib.get_backend()
    path = plot_top_losses(images, y_true, y_prob, ["a", "b", "c"],
                           tmp_path / "top.png", k=4)
    assert path == str(tmp_path / "top.png")
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    assert matplotlib.get_backend() == backend
    rgb = np.random.default_rng(0).uniform(-1, 1, (5, 6, 6, 3))
    plot_top_losses(rgb, y_true, y_prob, None, tmp_path / "rgb.png")


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "Received: k=0"),
    ({"images": np.zeros((4, 8, 8, 1))}, "Received: 4 images and 5 labels"),
    ({"class_names": ["a", "b"]}, "Received: class_names="),
    ({"path": ""}, "Received: path=''"),
])
def test_plot_top_losses_checks_arguments(tmp_path, kwargs, match):
    y_true, y_prob = _case()
    args = {"images": np.zeros((5, 8, 8, 1)), "y_true": y_true,
            "y_prob": y_prob, "class_names": ["a", "b", "c"],
            "path": tmp_path / "x.png", **kwargs}
    with pytest.raises(ArgumentError, match=match):
        plot_top_losses(**args)
    assert not (tmp_path / "x.png").exists()


def test_errors_per_class_beside_confusion_matrix(tmp_path):
    y_true, y_prob = _case()
    report = classification_report(y_true, y_prob, ["a", "b", "c"])
    assert report.errors_per_class() == [("a", 0, 2), ("b", 2, 2),
                                         ("c", 0, 1)]
    assert report.to_dict()["errors_per_class"] == {"a": 0, "b": 2, "c": 0}
    assert "errors" in report.summary().splitlines()[0]
    path = report.plot_confusion_matrix(tmp_path / "cm.png")
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
