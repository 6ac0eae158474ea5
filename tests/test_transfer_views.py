"""Fixed views (test-time augmentation) of the small-target linear probe:
`kerascnn.transfer.views`, `fit_linear_probe(views=...)` and
`transfer.fit(views=...)`."""

import keras
import numpy as np
import pytest

from kerascnn import transfer
from kerascnn._validation import ArgumentError
from kerascnn.transfer import linear_probe
from kerascnn.transfer import views as views_lib
from kerascnn.transfer.fit import _copies, _views

from _support import band_images, tiny_source


def test_preset_views_follow_the_preset_ranges():
    digits = views_lib.preset_views("digits", (28, 28, 1))
    assert digits.names == ("rotate-10.8", "rotate+10.8", "zoom0.9",
                            "zoom1.1")
    assert digits.fill_mode == "constant"
    assert len(digits.transforms) == 4
    natural = views_lib.preset_views("natural", (32, 32, 3))
    assert natural.names[-1] == "mirror" and len(natural.transforms) == 5
    assert natural.fill_mode == "reflect"
    assert views_lib.preset_views("none", (8, 8, 1)).transforms == ()


def test_preset_views_validate_their_arguments():
    with pytest.raises(ArgumentError, match="`preset`.*'blur'"):
        views_lib.preset_views("blur", (8, 8, 1))
    with pytest.raises(ArgumentError, match="`input_shape`"):
        views_lib.preset_views("digits", (8, 8))


def test_image_views_mirror_rotate_and_stack_originals_first():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 7, 7, 1)).astype("float32")
    mirror = views_lib._affine(7, 7, mirror=True)
    quarter = views_lib._affine(7, 7, angle=90.0)
    stacked = np.asarray(views_lib.ImageViews([mirror, quarter])(x))
    assert stacked.shape == (6, 7, 7, 1)
    np.testing.assert_allclose(stacked[:2], x)
    np.testing.assert_allclose(stacked[2:4], x[:, :, ::-1], atol=1e-4)
    turned = stacked[4:6, :, :, 0]
    assert any(np.allclose(turned, np.rot90(x[..., 0], k, axes=(1, 2)),
                           atol=1e-3) for k in (1, 3))
    only = views_lib.ImageViews([mirror], include_original=False)(x)
    np.testing.assert_allclose(np.asarray(only), x[:, :, ::-1], atol=1e-4)


def test_image_views_and_view_average_validate_their_arguments():
    with pytest.raises(ArgumentError, match="`transforms`"):
        views_lib.ImageViews([(1.0, 0.0)])
    with pytest.raises(ArgumentError, match="`fill_mode`.*'mirror'"):
        views_lib.ImageViews([], fill_mode="mirror")
    with pytest.raises(ArgumentError, match="`transforms`"):
        views_lib.ImageViews([], include_original=False)
    with pytest.raises(ArgumentError, match="`count`"):
        views_lib.ViewAverage(0)


def test_view_average_means_the_stacked_groups():
    rows = np.arange(12, dtype="float32").reshape(6, 2)  # 3 groups of 2
    averaged = np.asarray(views_lib.ViewAverage(3)(rows))
    np.testing.assert_allclose(averaged, rows.reshape(3, 2, 2).mean(0))


def _probe_data(n_per_class=8):
    x, y = band_images(n_per_class, (16, 16, 1), 3, seed=0)
    return x, y


def test_cross_validation_scores_the_views_average():
    rng = np.random.default_rng(0)
    n, d, classes, views = 30, 40, 3, 2
    y = np.arange(n) % classes
    centres = rng.normal(0.0, 1.0, (classes, d))
    base = 0.6 * centres[y] + rng.normal(0.0, 1.0, (n, d))
    versions = [base] + [base + rng.normal(0.0, 1.0, (n, d))
                         for _ in range(views)]
    features = np.concatenate(versions)
    grid = (0.1, 1.0)
    alone, averaged = linear_probe._cross_validate(
        "logistic", grid, 0, features, y, views, 5, num_views=views)
    fold = linear_probe._folds(y, 5, 0)
    expected_alone, expected_averaged = [], []
    for c in grid:
        right_alone = right_averaged = 0
        for k in range(5):
            train = np.tile(fold, views + 1) != k
            held = np.where(fold == k)[0]
            estimator = linear_probe._fit("logistic", c, 0, features[train],
                                          np.tile(y, views + 1)[train])
            probabilities = [views_lib.softmax(
                features[j * n + held] @ estimator.coef_.T
                + estimator.intercept_) for j in range(views + 1)]
            right_alone += np.sum(probabilities[0].argmax(1) == y[held])
            right_averaged += np.sum(np.mean(probabilities, 0).argmax(1)
                                     == y[held])
        expected_alone.append(right_alone / n)
        expected_averaged.append(right_averaged / n)
    assert alone == pytest.approx(expected_alone)
    assert averaged == pytest.approx(expected_averaged)


def test_probe_with_views_averages_the_probabilities_of_the_views(tmp_path):
    x, y = _probe_data()
    backbone = transfer.get_backbone(tiny_source((16, 16, 1), 3, seed=0))
    views = views_lib.preset_views("digits", (16, 16, 1))
    probe = transfer.fit_linear_probe(
        backbone, x, y, blocks=[-1], classifier="logistic", C=1.0,
        scaling="global", views=views)
    assert probe.selection == "given" and probe.views is views  # default on
    features = backbone.stage_model([-1])
    viewed = [x] + [np.asarray(views_lib.ImageViews(
        [t], include_original=False)(x)) for t in views.transforms]
    scaler, estimator = probe.scaler, probe.estimator
    expected = np.mean([views_lib.softmax(
        scaler.transform(features.predict(v, verbose=0)) @ estimator.coef_.T
        + estimator.intercept_) for v in viewed], axis=0)
    predicted = probe.model.predict(x, verbose=0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-3, atol=1e-4)
    # The views are layers of the model: it saves and loads as one.
    path = str(tmp_path / "probe.keras")
    probe.model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), predicted,
                               rtol=1e-5, atol=1e-6)


def test_probe_chooses_whether_to_average_by_cross_validation():
    x, y = _probe_data()
    backbone = transfer.get_backbone(tiny_source((16, 16, 1), 3, seed=0))
    views = views_lib.preset_views("digits", (16, 16, 1))
    probe = transfer.fit_linear_probe(
        backbone, x, y, blocks=[-1], classifier="logistic", C="auto",
        scaling="global", views=views)
    assert probe.selection == "cross-validation"
    assert probe.views in (None, views)
    averages = any(layer.name == "view_average"
                   for layer in probe.model.layers)
    assert averages == (probe.views is not None)
    with pytest.raises(ArgumentError, match="`views`"):
        transfer.fit_linear_probe(backbone, x, y, views="digits")


def test_fit_uses_the_preset_views_within_the_row_budget():
    shape = (16, 16, 1)
    digits = _views("auto", "digits", shape, 50)
    assert digits is not None and len(digits.transforms) == 4
    assert _views("none", "digits", shape, 50) is None
    assert _views("auto", "none", shape, 50) is None
    assert _views("auto", "digits", shape, 300) is not None  # 1,500 rows
    assert _views("auto", "digits", shape, 301) is None
    assert _copies("auto", 50, 4) == 10
    assert _copies("auto", 250, 4) == 1
    assert _copies("auto", 300, 4) == 0
    assert _copies(3, 300, 4) == 3


def test_fit_defaults_train_on_views_and_views_none_turns_them_off():
    x, y = band_images(6, (16, 16, 1), 3, seed=0)
    source = tiny_source((16, 16, 1), 3, seed=0)
    result = transfer.fit(source, x, y, source_images=x)
    assert result.views == ("rotate-10.8", "rotate+10.8", "zoom0.9",
                            "zoom1.1")
    assert result.averaged_views == (result.probe.views is not None)
    assert "fixed views" in result.summary()
    assert result.to_dict()["views"] == list(result.views)
    plain = transfer.fit(source, x, y, source_images=x, views="none")
    assert plain.views == () and not plain.averaged_views
    assert plain.probe.views is None
    with pytest.raises(ArgumentError, match="`views`.*'always'"):
        transfer.fit(source, x, y, views="always")
