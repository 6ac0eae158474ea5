"""The linear probe's cross-validation: the fast path (one span per fold,
projected once for the whole C grid, single-threaded BLAS) chooses what the
straightforward one chooses (the code before it: an SVD of the training
features and a fit from scratch for every (C, fold) pair)."""

import warnings

import keras
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_info

from kerascnn import transfer
from kerascnn.transfer import linear_probe


def _straightforward_estimator(classifier, C, seed):
    if classifier == "svm":
        return LinearSVC(C=C, max_iter=5000, random_state=seed)
    return LogisticRegression(C=C, max_iter=1000)


class _SVDProjected:
    """Fitted on the training rows' SVD coordinates (fewer rows than
    features), as before the fast path."""

    def __init__(self, estimator, x, y):
        self.basis = np.linalg.svd(x, full_matrices=False)[2].T
        self.estimator = estimator.fit(x @ self.basis, y)
        self.coef_ = estimator.coef_ @ self.basis.T
        self.intercept_ = estimator.intercept_

    def predict(self, x):
        return self.estimator.predict(x @ self.basis)

    def decision_function(self, x):
        return self.estimator.decision_function(x @ self.basis)

    def predict_proba(self, x):
        return self.estimator.predict_proba(x @ self.basis)


def _straightforward_fit(classifier, C, seed, x, y):
    estimator = _straightforward_estimator(classifier, C, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if x.shape[0] < x.shape[1]:
            return _SVDProjected(estimator, x, y)
        return estimator.fit(x, y)


def _straightforward_cv(classifier, C, seed, features, y, copies, folds):
    """One C: every fold's SVD and fit computed from scratch."""
    fold = linear_probe._folds(y, folds, seed)
    all_fold, all_y = np.tile(fold, copies + 1), np.tile(y, copies + 1)
    correct = 0
    for k in range(folds):
        train, held = all_fold != k, np.where(fold == k)[0]
        estimator = _straightforward_fit(classifier, C, seed,
                                         features[train], all_y[train])
        correct += int(np.sum(estimator.predict(features[held]) == y[held]))
    return correct / len(y)


def _features(n=30, d=200, copies=2, classes=3, seed=0):
    """`copies + 1` noisy versions of `n` images' features, `d > rows`, a
    class signal in a few directions weak enough that C matters."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(0.0, 1.0, (classes, d)) * (rng.uniform(
        size=d) < 0.05)
    base = centres[y] + rng.normal(0.0, 1.0, (n, d))
    versions = [base] + [base + rng.normal(0.0, 0.3, (n, d))
                         for _ in range(copies)]
    return np.concatenate(versions), y


@pytest.mark.parametrize("classifier", ["logistic", "svm"])
def test_fast_cross_validation_chooses_what_the_straightforward_one_does(
        classifier):
    copies, folds = 2, 5
    features, y = _features(copies=copies)
    assert features.shape[0] * (folds - 1) // folds < features.shape[1]
    grid = linear_probe.C_GRID
    reference = [_straightforward_cv(classifier, c, 0, features, y, copies,
                                     folds) for c in grid]
    assert len(set(reference)) > 1, "the case must make C matter"
    fast, averaged = linear_probe._cross_validate(classifier, grid, 0,
                                                  features, y, copies, folds)
    np.testing.assert_allclose(fast, reference)
    assert averaged == fast  # no views: nothing to average
    best_c = grid[int(np.argmax(reference))]
    assert grid[int(np.argmax(fast))] == best_c
    y_all = np.tile(y, copies + 1)
    straight = _straightforward_fit(classifier, best_c, 0, features, y_all)
    projected = linear_probe._fit(classifier, best_c, 0, features, y_all)
    assert isinstance(projected, linear_probe._Projected)
    new = np.random.default_rng(5).normal(0.0, 1.0, (40, features.shape[1]))
    np.testing.assert_array_equal(projected.predict(new),
                                  straight.predict(new))
    decision = new @ projected.coef_.T + projected.intercept_
    np.testing.assert_allclose(decision, straight.decision_function(new),
                               rtol=1e-3, atol=1e-3)


def test_span_keeps_inner_products_and_maps_weights_back():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 20))
    x = np.concatenate([x, x[:2]])  # repeated rows: rank 6 of 8 rows
    span = linear_probe._Span(x)
    assert span.projected and len(span.s) == 6
    z = span.coordinates()
    np.testing.assert_allclose(z @ z.T, x @ x.T, atol=1e-9)
    other = rng.normal(size=(3, 20))
    np.testing.assert_allclose(span.coordinates(other) @ z.T, other @ x.T,
                               atol=1e-9)
    coef = rng.normal(size=(2, 6))
    np.testing.assert_allclose(x @ span.to_features(coef).T, z @ coef.T,
                               atol=1e-9)
    tall = x.T.copy()  # more rows than features: used as they are
    wide = linear_probe._Span(tall)
    assert not wide.projected and wide.coordinates() is tall
    assert not linear_probe._Span(np.zeros((3, 5))).projected


def test_solver_calls_run_on_one_blas_thread():
    with linear_probe._single_threaded_blas():
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)


def _backbone():
    inputs = keras.Input((10, 10, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", name="c1")(inputs)
    x = keras.layers.ReLU(name="r1")(x)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(24, 3, padding="same", name="c2")(x)
    x = keras.layers.ReLU(name="r2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return transfer.get_backbone(keras.Model(inputs, keras.layers.Dense(
        3, name="out")(x)))


@pytest.mark.parametrize("with_validation", [False, True])
def test_probe_choice_and_model_match_the_straightforward_search(
        with_validation):
    rng = np.random.default_rng(0)
    y = np.arange(15) % 3
    x = (rng.uniform(0, 120, (15, 10, 10, 1))
         + 30 * y[:, None, None, None]).astype("float32")
    y_val = np.arange(9) % 3
    x_val = (rng.uniform(0, 120, (9, 10, 10, 1))
             + 30 * y_val[:, None, None, None]).astype("float32")
    backbone = _backbone()
    probe = transfer.fit_linear_probe(
        backbone, x, y, *((x_val, y_val) if with_validation else ()),
        classifier="logistic", C="auto", scaling="global")
    outputs = backbone.stage_model().predict(x, verbose=0)
    val_outputs = backbone.stage_model().predict(x_val, verbose=0)
    scores, choice = {}, {}
    for block, raw, raw_val in zip(backbone.blocks, outputs, val_outputs):
        scaler = linear_probe._GlobalScaler().fit(raw)
        features = scaler.transform(raw)
        if with_validation:
            accuracies = [float(np.mean(_straightforward_fit(
                "logistic", c, 0, features, y).predict(
                    scaler.transform(raw_val)) == y_val))
                for c in linear_probe.C_GRID]
        else:
            accuracies = [_straightforward_cv("logistic", c, 0, features, y,
                                              0, 5)
                          for c in linear_probe.C_GRID]
        best = int(np.argmax(accuracies))
        scores[block.name] = accuracies[best]
        choice[block.name] = (linear_probe.C_GRID[best], scaler, features)
    best_name = max(scores, key=lambda name: scores[name])
    assert probe.scores == pytest.approx(scores)
    assert probe.best_block == best_name
    best_c, scaler, features = choice[best_name]
    assert probe.C == best_c
    straight = _straightforward_fit("logistic", best_c, 0, features, y)
    index = [b.name for b in backbone.blocks].index(best_name)
    np.testing.assert_allclose(
        probe.model.predict(x_val, verbose=0),
        straight.predict_proba(scaler.transform(val_outputs[index])),
        rtol=1e-3, atol=1e-4)
