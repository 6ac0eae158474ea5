"""Linear classifiers (scikit-learn) on the pooled features of several
stages, chosen without spending labels, turned back into a Keras Dense
layer."""

import collections
import warnings

import keras
import numpy as np
import threadpoolctl
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from kerascnn import _validation
from kerascnn.core.compile import compile_classifier
from kerascnn.transfer import feature_cache
from kerascnn.transfer import views as views_lib

CLASSIFIERS = ("svm", "logistic")
SCALINGS = ("standard", "global")
C_GRID = (0.01, 0.1, 1.0, 10.0)
"""The regularization strengths `C="auto"` chooses from."""


class _GlobalScaler:
    """Divides every feature by one number: the features' overall std.

    With a handful of images per class, per-feature standardization
    amplifies the noise of nearly constant features; one global scale keeps
    the backbone's own feature geometry (measured on digits 5-9 from a 0-4
    source, 8 images per class: 0.79-0.82 test accuracy against 0.74-0.76
    with `StandardScaler`).
    """

    def fit(self, x):
        self.scale_ = np.full(x.shape[1], float(np.std(x)) or 1.0)
        self.mean_ = np.zeros(x.shape[1])
        return self

    def transform(self, x):
        return (x - self.mean_) / self.scale_


Probe = collections.namedtuple(
    "Probe", ["model", "best_block", "scores", "estimator", "scaler", "C",
              "selection", "views"])
Probe.__doc__ = """The result of `fit_linear_probe`.

Fields:
    model: End-to-end Keras model, raw pixels -> softmax over classes.
    best_block: Name of the block whose features won.
    scores: Dict block name -> its accuracy (on validation data, or
        cross-validated on the training labels), at its best `C`.
    estimator, scaler: The fitted scikit-learn objects of the best block.
    C: The regularization strength used.
    selection: `"validation"`, `"cross-validation"` or `"given"` (one block
        and one `C`: nothing to choose).
    views: The `Views` whose probabilities `model` averages with the
        image's (test-time augmentation), or `None` when it reads the image
        alone.
"""


def dense_from_linear(estimator, scaler=None, num_classes=None,
                      name="linear_probe"):
    """A Keras Dense layer that computes a fitted linear classifier.

    The `StandardScaler` (if any) is folded into the weights, so the layer
    takes the raw pooled features. Its output is the softmax of the
    estimator's `decision_function`: for multinomial `LogisticRegression`
    exactly `predict_proba`, for `LinearSVC` a softmax of the margins with
    the same arg-max as `predict`.

    Args:
        estimator: A fitted `LinearSVC` or `LogisticRegression` (anything
            with `coef_`, `intercept_`, `classes_`).
        scaler: Optional fitted `StandardScaler` (with its defaults)
            applied before it.
        num_classes: Output size. Defaults to `max(classes_) + 1`.
        name: Layer name. Defaults to `"linear_probe"`.

    Returns:
        A built `keras.layers.Dense`.
    """
    coef = np.asarray(estimator.coef_, dtype="float64")
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, "float64"))
    classes = np.asarray(estimator.classes_).astype(int)
    if coef.shape[0] == 1:  # binary: decision for classes_[1]
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    if scaler is not None:
        scale = np.asarray(scaler.scale_, "float64")
        mean = np.asarray(scaler.mean_, "float64")
        coef = coef / scale
        intercept = intercept - coef @ mean
    num_classes = num_classes or int(classes.max()) + 1
    kernel = np.zeros((coef.shape[1], num_classes))
    bias = np.full((num_classes,), -1e4)  # classes never seen in training
    kernel[:, classes] = coef.T
    bias[classes] = intercept
    layer = keras.layers.Dense(num_classes, activation="softmax", name=name,
                               dtype="float32")
    layer.build((None, coef.shape[1]))
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return layer


class _Span:
    """Coordinates in an orthonormal basis of the training rows' span.

    With fewer rows than features, an L2-regularized linear model's weights
    lie in the span of the training rows, so fitting on the rows'
    coordinates in an orthonormal basis of that span (`r <= n` numbers per
    image instead of `d`) gives the same classifier, much faster. The basis
    comes from the eigen-decomposition of the `n x n` Gram matrix (one
    matrix product and one symmetric eigen-decomposition: about 5x faster
    than the SVD of the `n x d` features at 1,200 x 3,136); directions
    whose squared singular value is below `n * eps` times the largest are
    dropped (rounding noise, and weights along them would cost a huge
    penalty). With at least as many rows as features (or all-zero ones)
    the features are used as they are.
    """

    def __init__(self, x):
        n, d = x.shape
        self.projected = n < d
        self.x = np.asarray(x, "float64") if self.projected else x
        if self.projected:
            eigenvalues, vectors = np.linalg.eigh(self.x @ self.x.T)
            keep = eigenvalues > eigenvalues.max() * n * np.finfo(
                "float64").eps
            self.projected = bool(np.any(keep))  # else all-zero features
            self.s = np.sqrt(eigenvalues[keep])
            self.u = vectors[:, keep]

    def coordinates(self, other=None):
        """Coordinates of the training rows, or of the rows of `other`."""
        if not self.projected:
            return self.x if other is None else other
        if other is None:
            return self.u * self.s
        return (np.asarray(other, "float64") @ self.x.T) @ (self.u / self.s)

    def to_features(self, coef):
        """Weights over the coordinates -> weights over the `d` features."""
        if not self.projected:
            return coef
        return (coef / self.s) @ self.u.T @ self.x  # coef @ V.T


class _Projected:
    """A fitted estimator on `_Span` coordinates, as one over the features.

    `coef_` is mapped back to the `d` features, so `dense_from_linear`
    turns it into a Dense layer on the pooled features.
    """

    def __init__(self, estimator, span):
        self.estimator, self.span = estimator, span
        self.coef_ = span.to_features(estimator.coef_)
        self.intercept_ = estimator.intercept_
        self.classes_ = estimator.classes_

    def predict(self, x):
        return self.estimator.predict(self.span.coordinates(x))


def _make_estimator(classifier, C, seed):
    if classifier == "svm":
        return LinearSVC(C=C, max_iter=5000, random_state=seed)
    return LogisticRegression(C=C, max_iter=1000)


def _single_threaded_blas():
    """BLAS on one thread while the many small solver calls run.

    The solvers' matrix products are small (a few thousand rows); with
    OpenBLAS's threads on a machine whose cores are busy, each call waits
    on threads that do not get a core (measured on 2 busy cores: a
    logistic regression 8.5 s with 2 threads, 0.4 s with 1).
    """
    return threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def _grid_correct(classifier, grid, seed, x_fit, y_fit, x_eval, y_eval,
                  view_evals=()):
    """Correct predictions on `x_eval` of a classifier fitted on `x_fit`,
    for each `C` of `grid`: the span of `x_fit` is computed once, and the
    arrays projected once, for the whole grid.

    Returns one `(alone, averaged)` pair per `C`: the correct predictions
    from the images' features alone, and from the class probabilities
    (softmax of the decision function, what the Keras model computes)
    averaged over the images and their views (`view_evals`: one array of
    features per view, rows matching `x_eval`; without views the two
    counts are equal).
    """
    span = _Span(x_fit)
    z_fit = span.coordinates()
    z_evals = [span.coordinates(x) for x in [x_eval] + list(view_evals)]
    correct = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for value in grid:
            estimator = _make_estimator(classifier, value, seed).fit(
                z_fit, y_fit)
            classes = np.asarray(estimator.classes_)
            probabilities = [views_lib.softmax(estimator.decision_function(z))
                             for z in z_evals]
            alone = classes[probabilities[0].argmax(1)]
            averaged = classes[np.mean(probabilities, 0).argmax(1)]
            correct.append((int(np.sum(alone == y_eval)),
                            int(np.sum(averaged == y_eval))))
    return correct


def _fit(classifier, C, seed, x, y):
    span = _Span(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = _make_estimator(classifier, C, seed).fit(
            span.coordinates(), y)
    return _Projected(estimator, span) if span.projected else estimator


def _folds(y, num_folds, seed):
    """Stratified fold index of each original image."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for c in np.unique(y):
        members = rng.permutation(np.where(y == c)[0])
        fold[members] = np.arange(len(members)) % num_folds
    return fold


def _cross_validate(classifier, grid, seed, features, y, copies, num_folds,
                    num_views=0):
    """Accuracy on held-out original images for each `C` of `grid`, folds
    grouped by image.

    `features` holds `copies + 1` stacked versions of the `n` images (copy
    0 the originals), the last `num_views` of them the fixed views; every
    version of a held-out image is left out of its fold's training, and
    only the originals are scored: from their features alone and, with
    views, from the probabilities averaged over them and their views. Each
    fold's span is computed once for the whole grid.

    Returns `(alone, averaged)`: two lists of accuracies, one per `C`.
    """
    n = len(y)
    fold = _folds(y, num_folds, seed)
    all_fold = np.tile(fold, copies + 1)
    all_y = np.tile(y, copies + 1)
    correct = np.zeros((len(grid), 2), int)
    first_view = copies + 1 - num_views
    for k in range(num_folds):
        train = all_fold != k
        held = np.where(fold == k)[0]
        view_evals = [features[(first_view + j) * n + held]
                      for j in range(num_views)]
        correct += np.asarray(_grid_correct(
            classifier, grid, seed, features[train], all_y[train],
            features[held], y[held], view_evals), int)
    return list(correct[:, 0] / n), list(correct[:, 1] / n)


def fit_linear_probe(backbone, x_train, y_train, x_val=None, y_val=None,
                     blocks=None, classifier="svm", C=1.0, batch_size=64,
                     seed=0, scaling="standard", augment=None, copies=0,
                     num_folds=5, views=None, verbose=0):
    """Linear classifiers on several stages; the best one as a Keras model.

    The table's advice for small data: train a linear SVM (or logistic
    regression) on pooled features of one or several stages and keep the
    stage that does best. The choice of the stage (and of `C` when
    `C="auto"`) is made on `x_val` when given, else by stratified k-fold
    cross-validation on the training labels themselves, after which the
    classifier is refitted on all of them: no label is spent on choosing.
    All stages' features come from one forward pass (plus one per
    augmented copy and one per view).

    With `views`, the features of fixed views of every training image
    (rotations, zooms, a mirror: `kerascnn.transfer.views`) are added to
    the training set too, and the choice also decides whether the model
    averages its class probabilities over the image and its views
    (test-time augmentation): both are scored on the held-out images, and
    averaging is kept on a tie.

    What it adds to Keras and scikit-learn: the stage and regularization
    search without a validation split, features of augmented copies and
    views with folds grouped by image, test-time augmentation chosen on the
    training labels, and the fitted scikit-learn classifier turned into a
    Dense layer, so the result is one Keras model that saves and exports as
    a SavedModel.

    Args:
        backbone: A `Backbone` (used frozen).
        x_train, y_train: Raw training images and integer labels.
        x_val, y_val: Optional raw validation images and labels. Defaults
            to `None` (cross-validation).
        blocks: Block names or indices to try. Defaults to all.
        classifier: `"svm"` (`LinearSVC`) or `"logistic"`. Defaults to
            `"svm"`.
        C: Inverse regularization strength > 0, or `"auto"` (chosen from
            `C_GRID`). Defaults to `1.0`.
        batch_size: Forward-pass batch size. Defaults to `64`.
        seed: Seed of `LinearSVC` and of the folds. Defaults to `0`.
        scaling: `"standard"` (`StandardScaler` per feature) or `"global"`
            (one scale for all features, better with very few images per
            class). Defaults to `"standard"`.
        augment: Optional augmentation layer (see
            `kerascnn.data.augmentation`) for `copies` augmented copies of
            every training image, whose features are added to the training
            set. Defaults to `None`.
        copies: Number of augmented copies per image. Defaults to `0`.
        num_folds: Folds of the cross-validation (at most the smallest
            class count). Defaults to `5`.
        views: Optional `kerascnn.transfer.views.Views` (see
            `preset_views`), or `None` for none. Defaults to `None`.
        verbose: `1` shows a progress bar on feature extraction.

    Returns:
        A `Probe`.
    """
    classifier = _validation.check_option("classifier", classifier,
                                          CLASSIFIERS)
    if C != "auto":
        C = _validation.check_positive_float("C", C)
    scaling = _validation.check_option("scaling", scaling, SCALINGS)
    copies = _validation.check_non_negative_int("copies", copies)
    num_folds = _validation.check_int("num_folds", num_folds, 2)
    if views is not None and not isinstance(views, views_lib.Views):
        _validation.fail("views", "a kerascnn.transfer.views.Views (from "
                         "preset_views) or None", views)
    if views is not None and not views.transforms:
        views = None
    num_views = 0 if views is None else len(views.transforms)
    if getattr(backbone, "blocks", None) is None:
        _validation.fail("backbone", "a kerascnn.transfer.Backbone", backbone)
    x_train = _validation.check_images("x_train", x_train)
    y_train = _validation.check_labels("y_train", y_train,
                                       num_samples=len(x_train),
                                       samples_name="x_train")
    if (x_val is None) != (y_val is None):
        _validation.fail("y_val", "given together with x_val", y_val)
    if x_val is not None:
        x_val = _validation.check_images("x_val", x_val)
        y_val = _validation.check_labels("y_val", y_val,
                                         num_samples=len(x_val),
                                         samples_name="x_val")
    chosen = [backbone.block(k) for k in
              (range(len(backbone.blocks)) if blocks is None else blocks)]
    grid = C_GRID if C == "auto" else (C,)
    counts = np.bincount(y_train)
    folds = int(min(num_folds, counts[counts > 0].min()))
    nothing_to_choose = len(chosen) == 1 and len(grid) == 1
    if x_val is None and folds < 2 and not nothing_to_choose:
        _validation.fail("y_train", "at least 2 images per class to choose "
                         "the block or C by cross-validation (or pass x_val "
                         "and y_val, or one block and a number C)",
                         f"class counts {counts.tolist()}")
    stage_model = backbone.stage_model([b.index for b in chosen])
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    train = feature_cache.extract_features(
        stage_model, x_train, batch_size, verbose=verbose, augment=augment,
        copies=copies)
    train = train if isinstance(train, list) else [train]
    val = None
    if x_val is not None:
        val = feature_cache.extract_features(stage_model, x_val, batch_size)
        val = val if isinstance(val, list) else [val]
    for index in range(num_views):
        # The views' rows follow the copies' (row `k * n + i`, as there).
        extra = _view_features(stage_model, views, index, backbone,
                               x_train, batch_size)
        train = [np.concatenate([t, e]) for t, e in zip(train, extra)]
        if val is not None:
            extra = _view_features(stage_model, views, index, backbone,
                                   x_val, batch_size)
            val = [np.concatenate([v, e]) for v, e in zip(val, extra)]
    rounds = copies + num_views
    num_classes = int(y_train.max()) + 1
    if y_val is not None:
        num_classes = max(num_classes, int(y_val.max()) + 1)
    y_all = np.tile(y_train, rounds + 1)
    selection = ("given" if nothing_to_choose else
                 "validation" if val is not None else "cross-validation")
    scores, fitted = {}, {}
    with _single_threaded_blas():
        for i, block in enumerate(chosen):
            scaler = (StandardScaler() if scaling == "standard"
                      else _GlobalScaler()).fit(train[i])
            features = scaler.transform(train[i])
            if selection == "given":
                alone, averaged = [float("nan")], [float("nan")]
            elif selection == "validation":
                n_val = len(y_val)
                counts = np.asarray(_grid_correct(
                    classifier, grid, seed, features, y_all,
                    scaler.transform(val[i][:n_val]), y_val,
                    [scaler.transform(val[i][(j + 1) * n_val:
                                             (j + 2) * n_val])
                     for j in range(num_views)]), float) / n_val
                alone, averaged = list(counts[:, 0]), list(counts[:, 1])
            else:
                alone, averaged = _cross_validate(
                    classifier, grid, seed, features, y_train, rounds, folds,
                    num_views)
            # Averaged over the views first, so that it wins a tie; then
            # the first best C.
            options = ([(a, c, True) for a, c in zip(averaged, grid)]
                       if num_views else []) + [
                           (a, c, False) for a, c in zip(alone, grid)]
            best = (0 if selection == "given" else
                    int(np.argmax([o[0] for o in options])))
            accuracy, best_c, average = options[best]
            scores[block.name] = accuracy
            fitted[block.name] = (block, scaler, best_c, average)
        best_name = max(scores, key=lambda name: scores[name])  # first wins
        block, scaler, best_c, average = fitted[best_name]
        estimator = _fit(classifier, best_c, seed,
                         scaler.transform(train[chosen.index(block)]), y_all)
    features = backbone.stage_model([block.index])
    dense = dense_from_linear(estimator, scaler, num_classes)
    if average:
        model = views_lib.averaged_model(features, dense, views,
                                         backbone.input_shape)
    else:
        inputs = keras.Input(backbone.input_shape, name="pixels")
        outputs = dense(features(inputs))
        model = keras.Model(inputs, outputs, name="linear_probe_model")
    model = compile_classifier(model)
    return Probe(model, best_name, scores, estimator, scaler, best_c,
                 selection, views if average else None)


def _view_features(stage_model, views, index, backbone, images, batch_size):
    """The features of every block on view `index` of `images`."""
    model = views_lib.view_feature_model(stage_model, views, index,
                                         backbone.input_shape)
    features = feature_cache.extract_features(model, images, batch_size)
    return features if isinstance(features, list) else [features]
