"""Label imbalance: class weights, the imbalance ratio and its detection."""

import numpy as np

from kerascnn import _validation

CLASS_WEIGHT_METHODS = ("balanced", "effective_number")


def _labels(labels, num_classes=None):
    if num_classes is not None:
        num_classes = _validation.check_int("num_classes", num_classes, 2)
    return _validation.check_labels("labels", labels, num_classes=num_classes)


def class_counts(labels, num_classes=None):
    """Number of samples of each class `0 .. num_classes - 1` (int64 array)."""
    labels = _labels(labels, num_classes)
    size = num_classes if num_classes is not None else int(labels.max()) + 1
    return np.bincount(labels, minlength=size).astype(np.int64)


def class_weights(labels, method="balanced", beta=0.999, num_classes=None,
                  normalize="samples"):
    """Per-class loss weights for `model.fit(class_weight=...)`.

    Reweighting the loss by class ratio is one of the two lecture remedies
    for label imbalance (the other is resampling, see `make_dataset`).

    - `"balanced"`: scikit-learn's `compute_class_weight("balanced")`,
      `w_c = n / (k * n_c)` for the `k` classes present.
    - `"effective_number"`: Cui et al. (2019), "Class-Balanced Loss Based on
      Effective Number of Samples": `w_c ∝ (1 - beta) / (1 - beta ** n_c)`.
      `beta = 0` gives equal weights, `beta -> 1` approaches `"balanced"`
      (inverse frequency); it tempers the very large weights inverse
      frequency gives to tiny classes.

    Normalization (`normalize`): `"samples"` (default) scales the weights so
    that `sum_c w_c * n_c = n`, i.e. the mean weight per training sample is 1
    and the loss keeps its scale (`"balanced"` already satisfies this);
    `"classes"` scales them so that they sum to the number of classes, as in
    Cui et al. A class in `range(num_classes)` with no sample gets weight
    `1.0` (it never occurs in the training labels, but Keras wants every
    class id as a key).

    Args:
        labels: Integer class labels (or one-hot rows).
        method: `"balanced"` or `"effective_number"`. Defaults to
            `"balanced"`.
        beta: Float in `[0, 1)` for `"effective_number"`. Defaults to
            `0.999`.
        num_classes: Optional number of classes (when the largest class id
            is absent from `labels`). Defaults to `None` (largest label + 1).
        normalize: `"samples"` or `"classes"`, see above. Defaults to
            `"samples"`.

    Returns:
        Dict `{class_id: weight}` with a key for every class id.
    """
    method = _validation.check_option("method", method, CLASS_WEIGHT_METHODS)
    beta = _validation.check_float("beta", beta, 0.0, 1.0, max_open=True)
    normalize = _validation.check_option("normalize", normalize,
                                         ("samples", "classes"))
    counts = class_counts(labels, num_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones_like(counts)
    n_present = counts[present]
    if method == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        y = _labels(labels, num_classes)
        classes = np.flatnonzero(present)
        raw = compute_class_weight("balanced", classes=classes, y=y)
    else:
        raw = (1.0 - beta) / (1.0 - np.power(beta, n_present))
        if beta == 0.0:
            raw = np.ones_like(n_present)
    if normalize == "samples":
        raw = raw * n_present.sum() / np.sum(raw * n_present)
    else:
        raw = raw * len(raw) / raw.sum()
    weights[present] = raw
    return {int(c): float(w) for c, w in enumerate(weights)}


def imbalance_ratio(labels, num_classes=None):
    """Count of the largest class divided by the count of the smallest.

    `1.0` for perfectly balanced labels. Without `num_classes` the classes
    are those present in `labels`; with it, a class without samples makes
    the ratio `inf`.
    """
    counts = class_counts(labels, num_classes)
    if num_classes is None:
        counts = counts[counts > 0]
    if counts.min() == 0:
        return float("inf")
    return float(counts.max() / counts.min())


def detect_imbalance(labels, threshold=3.0, verbose=True, num_classes=None):
    """Says whether the labels are imbalanced, and prints what to do about it.

    Keras and scikit-learn leave the check to the user; this is the check the
    lecture asks for before training. When the imbalance ratio (largest over
    smallest class count) exceeds `threshold`, and `verbose`, a note naming
    the ratio, the two classes and a remedy is printed: for a ratio up to 10,
    reweight the loss (`class_weights`); beyond that, resample
    (`make_dataset(sampling="oversample")` or `"balanced"` batches), since
    weights that large make the gradient noisy; in both cases judge the
    model by macro F1 / PR AUC (`classification_report`), not accuracy.

    Args:
        labels: Integer class labels (or one-hot rows).
        threshold: Float >= 1. Defaults to `3.0`.
        verbose: Boolean, print the note. Defaults to `True`.
        num_classes: Optional number of classes. Defaults to `None`.

    Returns:
        `True` when the ratio is above `threshold`.
    """
    threshold = _validation.check_float("threshold", threshold, 1.0)
    verbose = _validation.check_bool("verbose", verbose)
    counts = class_counts(labels, num_classes)
    ratio = imbalance_ratio(labels, num_classes)
    imbalanced = ratio > threshold
    if imbalanced and verbose:
        big = int(np.argmax(counts))
        considered = np.flatnonzero(counts > 0) if num_classes is None \
            else np.arange(len(counts))
        small = int(considered[np.argmin(counts[considered])])
        if ratio <= 10.0:
            remedy = ("reweight the loss: model.fit(..., class_weight="
                      "kerascnn.data.class_weights(labels))")
        else:
            remedy = ("resample: kerascnn.data.make_dataset(..., sampling="
                      "'oversample') or sampling='balanced' (class weights "
                      "this large make the gradient noisy)")
        print(f"Label imbalance: class {big} has {int(counts[big])} samples, "
              f"class {small} has {int(counts[small])} (ratio {ratio:.1f} > "
              f"threshold {threshold:g}). Suggested remedy: {remedy}. Judge "
              "the model by macro F1 and PR AUC "
              "(kerascnn.data.classification_report), not accuracy.")
    return bool(imbalanced)
