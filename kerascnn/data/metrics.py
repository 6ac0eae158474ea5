"""A classification report for imbalanced multi-class problems, and error
analysis: the per-class error counts and the grid of the highest-loss images
(fastai's `ClassificationInterpretation` / `plot_top_losses`)."""

import dataclasses
import json

import numpy as np

from kerascnn import _validation


def _round(value):
    return None if value is None else float(value)


@dataclasses.dataclass
class ClassificationReport:
    """Per-class and averaged metrics of a classifier on one dataset.

    Attributes:
        class_names: List of class names.
        precision, recall, f1: Lists of per-class floats (0.0 where a class
            was never predicted or never present, as scikit-learn's
            `zero_division=0`).
        support: List of per-class sample counts in `y_true`.
        accuracy: Fraction of correct predictions.
        macro_f1: Unweighted mean of the per-class F1 scores over the
            classes that occur in `y_true` or in the predictions (as
            scikit-learn's `f1_score(average="macro")` without `labels`).
        weighted_f1: Mean of the per-class F1 scores weighted by support.
        roc_auc: Macro one-vs-rest ROC AUC over the classes where it is
            defined (present, and not the only class), or `None` without
            probabilities.
        pr_auc: Macro one-vs-rest average precision (PR AUC), same classes.
        per_class_roc_auc, per_class_pr_auc: Lists (`None` where undefined).
        confusion_matrix: Integer array `(k, k)`, rows true, columns
            predicted.
    """

    class_names: list
    precision: list
    recall: list
    f1: list
    support: list
    accuracy: float
    macro_f1: float
    weighted_f1: float
    roc_auc: object
    pr_auc: object
    per_class_roc_auc: list
    per_class_pr_auc: list
    confusion_matrix: np.ndarray

    def most_confused(self, k=5):
        """The `k` most frequent mistakes, as `(true, predicted, count)`.

        Names come from `class_names`; pairs with no mistake are left out;
        ties are ordered by true then predicted class index.
        """
        k = _validation.check_positive_int("k", k)
        matrix = np.asarray(self.confusion_matrix)
        pairs = [(int(matrix[i, j]), i, j)
                 for i in range(len(matrix)) for j in range(len(matrix))
                 if i != j and matrix[i, j] > 0]
        pairs.sort(key=lambda item: (-item[0], item[1], item[2]))
        return [(self.class_names[i], self.class_names[j], count)
                for count, i, j in pairs[:k]]

    def errors_per_class(self):
        """Misclassified samples of each true class, from the confusion matrix.

        The per-class view of fastai's `ClassificationInterpretation`: where
        the errors are, in counts rather than rates.

        Returns:
            A list, in class order, of `(class_name, errors, support)`:
            `errors` samples of that true class predicted as another class,
            out of `support`.
        """
        matrix = np.asarray(self.confusion_matrix)
        support = matrix.sum(axis=1)
        errors = support - np.diag(matrix)
        return [(name, int(errors[i]), int(support[i]))
                for i, name in enumerate(self.class_names)]

    def to_dict(self):
        """A JSON-serialisable dict of every field."""
        return {
            "class_names": list(self.class_names),
            "precision": [float(v) for v in self.precision],
            "recall": [float(v) for v in self.recall],
            "f1": [float(v) for v in self.f1],
            "support": [int(v) for v in self.support],
            "accuracy": float(self.accuracy),
            "macro_f1": float(self.macro_f1),
            "weighted_f1": float(self.weighted_f1),
            "roc_auc": _round(self.roc_auc),
            "pr_auc": _round(self.pr_auc),
            "per_class_roc_auc": [_round(v) for v in self.per_class_roc_auc],
            "per_class_pr_auc": [_round(v) for v in self.per_class_pr_auc],
            "confusion_matrix": np.asarray(self.confusion_matrix).astype(
                int).tolist(),
            "most_confused": [list(p) for p in self.most_confused(5)],
            "errors_per_class": {name: errors for name, errors, _
                                 in self.errors_per_class()},
        }

    def to_json(self, **kwargs):
        """`json.dumps(self.to_dict(), **kwargs)`."""
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self):
        """A text table: per-class precision, recall, F1, support, then totals."""
        width = max(12, *(len(n) for n in self.class_names))
        lines = [f"{'class':>{width}} {'precision':>9} {'recall':>9} "
                 f"{'f1':>9} {'support':>9} {'errors':>7}"]
        errors = self.errors_per_class()
        for i, name in enumerate(self.class_names):
            lines.append(f"{name:>{width}} {self.precision[i]:9.4f} "
                         f"{self.recall[i]:9.4f} {self.f1[i]:9.4f} "
                         f"{self.support[i]:9d} {errors[i][1]:7d}")
        total = int(sum(self.support))
        lines.append("")
        lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} "
                     f"{self.accuracy:9.4f} {total:9d}")
        lines.append(f"{'macro f1':>{width}} {'':>9} {'':>9} "
                     f"{self.macro_f1:9.4f} {total:9d}")
        lines.append(f"{'weighted f1':>{width}} {'':>9} {'':>9} "
                     f"{self.weighted_f1:9.4f} {total:9d}")
        for label, value in (("ROC AUC", self.roc_auc),
                             ("PR AUC", self.pr_auc)):
            text = "n/a" if value is None else f"{value:.4f}"
            lines.append(f"{label + ' (macro, one-vs-rest)':>{width}} {text}")
        confused = self.most_confused(5)
        if confused:
            lines.append("most confused (true -> predicted: count): " + ", ".join(
                f"{t} -> {p}: {c}" for t, p, c in confused))
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def plot_confusion_matrix(self, path, normalize=False, title=None,
                              errors=True):
        """Writes the confusion matrix as a PNG (matplotlib, no display).

        Drawn on a `matplotlib.figure.Figure` with the Agg canvas, so the
        user's pyplot backend is left alone.

        Args:
            path: Output file path.
            normalize: Boolean, show each row as fractions of the true class.
                Defaults to `False`.
            title: Optional title.
            errors: Boolean, draw the misclassified count of each true class
                (`errors_per_class`) as bars beside the matrix's rows.
                Defaults to `True`.

        Returns:
            The path written, as a string.
        """
        import os

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if not isinstance(path, (str, os.PathLike)) or not str(path):
            _validation.fail("path", "a file path", path)
        normalize = _validation.check_bool("normalize", normalize)
        errors = _validation.check_bool("errors", errors)
        matrix = np.asarray(self.confusion_matrix, dtype=np.float64)
        if normalize:
            rows = matrix.sum(axis=1, keepdims=True)
            matrix = np.divide(matrix, rows, out=np.zeros_like(matrix),
                               where=rows > 0)
        k = len(self.class_names)
        size = max(4.0, 0.5 * k + 2.0)
        figure = Figure(figsize=(size * (1.45 if errors else 1.0), size))
        FigureCanvasAgg(figure)
        if errors:
            axes, bars = figure.subplots(
                1, 2, gridspec_kw={"width_ratios": [4, 1.3]})
        else:
            axes = figure.add_subplot(1, 1, 1)
        image = axes.imshow(matrix, cmap="Blues", interpolation="nearest")
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set_xticks(range(k), labels=self.class_names, rotation=45,
                        ha="right")
        axes.set_yticks(range(k), labels=self.class_names)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(title or ("confusion matrix (row-normalised)"
                                 if normalize else "confusion matrix"))
        if k <= 20:
            threshold = matrix.max() / 2.0 if matrix.max() > 0 else 1.0
            for i in range(k):
                for j in range(k):
                    text = (f"{matrix[i, j]:.2f}" if normalize
                            else str(int(matrix[i, j])))
                    axes.text(j, i, text, ha="center", va="center",
                              fontsize=8, color="white"
                              if matrix[i, j] > threshold else "black")
        if errors:
            counts = [count for _, count, _ in self.errors_per_class()]
            bars.barh(range(k), counts, color="C3")
            bars.set_ylim(k - 0.5, -0.5)  # rows in the matrix's order
            bars.set_yticks(range(k), labels=self.class_names)
            bars.set_xlabel("errors")
            bars.set_title("misclassified")
            for i, count in enumerate(counts):
                if count and k <= 20:
                    bars.text(count, i, f" {count}", va="center", fontsize=8)
            bars.set_xlim(0, max(1, max(counts)) * 1.3)
        figure.tight_layout()
        path = os.fspath(path)
        figure.savefig(path, format="png", dpi=100)
        return path


def _check_predictions(y_true, y_prob, num_classes):
    array = np.asarray(y_prob)
    if array.ndim == 2 and array.shape[1] == 1:  # sigmoid output
        p = array[:, 0].astype(np.float64)
        array = np.stack([1.0 - p, p], axis=1)
    if array.ndim == 1:
        if not np.issubdtype(array.dtype, np.integer):
            _validation.fail("y_prob", "an (n, num_classes) array of "
                             "probabilities or an (n,) array of predicted "
                             "class indices", f"1-D array of dtype {array.dtype}")
        if len(array) != len(y_true):
            _mismatch(len(y_true), len(array))
        if array.min() < 0:
            _validation.fail("y_prob", "predicted class indices >= 0",
                             f"minimum {int(array.min())}")
        return None, array.astype(np.int64)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        _validation.fail("y_prob", "an (n, num_classes) array of "
                         "probabilities or an (n,) array of predicted class "
                         "indices", f"array of shape {array.shape}")
    if len(array) != len(y_true):
        _mismatch(len(y_true), len(array))
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        _validation.fail("y_prob", "finite scores", "NaN or infinite values")
    if num_classes is not None and array.shape[1] != num_classes:
        raise _validation.ArgumentError(
            f"Argument `y_prob` must have one column per class "
            f"({num_classes} class names). Received: y_prob of shape "
            f"{array.shape}")
    return array, np.argmax(array, axis=1).astype(np.int64)


def _mismatch(n_true, n_pred):
    raise _validation.ArgumentError(
        "Arguments `y_true` and `y_prob` must have the same number of "
        f"samples. Received: {n_true} labels and {n_pred} predictions")


def _true_labels(y_true):
    array = np.asarray(y_true)
    if array.ndim == 2 and array.shape[1] > 1:
        array = np.argmax(array, axis=1)
    elif array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if (array.ndim != 1 or array.size == 0
            or not np.issubdtype(array.dtype, np.number)
            or not np.all(np.isfinite(array))
            or not np.all(array == np.round(array)) or array.min() < 0):
        _validation.fail("y_true", "a non-empty 1-D array of class indices "
                         ">= 0", f"array of shape {array.shape} and dtype "
                         f"{array.dtype}")
    return array.astype(np.int64)


def classification_report(y_true, y_prob, class_names=None):
    """Computes precision, recall, F1, ROC/PR AUC and the confusion matrix.

    Built on scikit-learn (`precision_recall_fscore_support`,
    `confusion_matrix`, `roc_auc_score`, `average_precision_score`). What it
    adds: one object holding every number the lecture recommends for
    imbalanced labels (per-class recall and F1, macro F1, one-vs-rest ROC AUC
    and PR AUC) rather than accuracy alone; AUCs that skip, instead of
    failing on, classes absent from `y_true`; the most confused class pairs;
    a text summary, a JSON-able dict and a confusion-matrix PNG.

    Args:
        y_true: Integer class labels `(n,)` (or one-hot rows).
        y_prob: Predicted probabilities `(n, num_classes)` (e.g.
            `model.predict(x)`), a sigmoid column `(n, 1)` for two classes,
            or predicted class indices `(n,)` (then the AUCs are `None`).
            The prediction is the arg-max.
        class_names: Optional list of names, one per class. Defaults to
            `"0"`, `"1"`, ...

    Returns:
        A `ClassificationReport`.
    """
    from sklearn import metrics

    y_true = _true_labels(y_true)
    if class_names is not None:
        if (not isinstance(class_names, (list, tuple))
                or not all(isinstance(n, str) and n for n in class_names)
                or len(set(class_names)) != len(class_names)
                or len(class_names) < 2):
            _validation.fail("class_names", "a list of at least two distinct "
                             "non-empty strings", class_names)
        class_names = list(class_names)
    probs, y_pred = _check_predictions(
        y_true, y_prob, None if class_names is None else len(class_names))
    k = max(int(y_true.max()) + 1, int(y_pred.max()) + 1,
            0 if probs is None else probs.shape[1],
            0 if class_names is None else len(class_names), 2)
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    elif k > len(class_names):
        raise _validation.ArgumentError(
            "Arguments `y_true` and `y_prob` must hold class indices below "
            f"len(class_names)={len(class_names)}. Received: class index "
            f"{k - 1}")
    labels = list(range(k))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    total = support.sum()
    # Like scikit-learn's default labels: classes seen in y_true or y_pred.
    seen = (support > 0) | (np.bincount(y_pred, minlength=k)[:k] > 0)
    roc, pr = [None] * k, [None] * k
    if probs is not None:
        for c in labels:
            positive = y_true == c
            if positive.any() and not positive.all():
                roc[c] = float(metrics.roc_auc_score(positive, probs[:, c]))
                pr[c] = float(metrics.average_precision_score(
                    positive, probs[:, c]))
    defined_roc = [v for v in roc if v is not None]
    defined_pr = [v for v in pr if v is not None]
    return ClassificationReport(
        class_names=class_names,
        precision=[float(v) for v in precision],
        recall=[float(v) for v in recall],
        f1=[float(v) for v in f1],
        support=[int(v) for v in support],
        accuracy=float(np.mean(y_true == y_pred)),
        macro_f1=float(np.mean(f1[seen])),
        weighted_f1=float(np.sum(f1 * support) / total),
        roc_auc=float(np.mean(defined_roc)) if defined_roc else None,
        pr_auc=float(np.mean(defined_pr)) if defined_pr else None,
        per_class_roc_auc=roc,
        per_class_pr_auc=pr,
        confusion_matrix=metrics.confusion_matrix(y_true, y_pred,
                                                  labels=labels),
    )


def top_losses(y_true, y_prob, k=16):
    """The `k` samples with the highest cross-entropy loss, highest first.

    Args:
        y_true: Integer class labels `(n,)` (or one-hot rows).
        y_prob: Predicted probabilities `(n, num_classes)`.
        k: Integer >= 1, at most this many samples. Defaults to `16`.

    Returns:
        `(indices, losses)`: integer indices into `y_true` and their losses
        `-log p(true class)` (probabilities clipped at 1e-12), sorted by loss,
        ties by index.
    """
    y_true = _true_labels(y_true)
    k = _validation.check_positive_int("k", k)
    probs, _ = _check_predictions(y_true, y_prob, None)
    if probs is None:
        _validation.fail("y_prob", "an (n, num_classes) array of "
                         "probabilities", "an (n,) array of class indices")
    if y_true.max() >= probs.shape[1]:
        raise _validation.ArgumentError(
            "Argument `y_true` must hold class indices below the "
            f"{probs.shape[1]} columns of `y_prob`. Received: class index "
            f"{int(y_true.max())}")
    losses = -np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12,
                             None))
    order = np.lexsort((np.arange(len(losses)), -losses))[:k]
    return order.astype(np.int64), losses[order]


def _display_image(image):
    """(h, w) or (h, w, 3) floats in [0, 1] for `imshow`."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[-1] > 3:
        image = image[..., :3]
    low, high = float(np.min(image)), float(np.max(image))
    if low >= 0 and high <= 1:
        return image
    if low >= 0 and high <= 255:
        return image / 255.0
    return (image - low) / (high - low) if high > low else image * 0.0


def plot_top_losses(images, y_true, y_prob, class_names, path, k=16):
    """Writes a grid of the `k` highest-loss images as a PNG.

    As fastai's `ClassificationInterpretation.plot_top_losses`: the held-out
    images the model got most wrong (or right with the least confidence),
    each titled with its true label, the prediction and the predicted
    class's probability (and the probability of the true class when they
    differ). Wrong predictions have a red title. Drawn on a
    `matplotlib.figure.Figure` with the Agg canvas (the user's pyplot
    backend is left alone).

    Args:
        images: Array `(n, height, width)` or `(n, height, width,
            channels)` of the images the probabilities are for, in any of
            the ranges [0, 1], [0, 255] or other (then min-max scaled per
            image for display).
        y_true: Integer class labels `(n,)` (or one-hot rows).
        y_prob: Predicted probabilities `(n, num_classes)`, e.g.
            `model.predict(images)`.
        class_names: List of names, one per class (or `None`: `"0"`,
            `"1"`, ...).
        path: Output PNG path.
        k: Integer >= 1, the number of images (fewer if `n < k`). Defaults
            to `16`.

    Returns:
        The path written, as a string.

    Raises:
        ArgumentError: for mismatched lengths, a bad `k`, `path` or
            `class_names`, before anything is drawn.
    """
    import math
    import os

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(path, (str, os.PathLike)) or not str(path):
        _validation.fail("path", "a file path", path)
    array = np.asarray(images)
    if array.ndim not in (3, 4) or not np.issubdtype(array.dtype, np.number):
        _validation.fail("images", "an (n, height, width[, channels]) array "
                         "of images", f"array of shape {array.shape}")
    if len(array) != len(np.asarray(y_true)):
        raise _validation.ArgumentError(
            "Arguments `images` and `y_true` must have the same number of "
            f"samples. Received: {len(array)} images and "
            f"{len(np.asarray(y_true))} labels")
    indices, losses = top_losses(y_true, y_prob, k)
    labels = _true_labels(y_true)
    probs = np.asarray(y_prob, dtype=np.float64)
    num_classes = probs.shape[1]
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if (not isinstance(class_names, (list, tuple))
            or len(class_names) != num_classes):
        _validation.fail("class_names", f"a list of {num_classes} names (one "
                         "per column of `y_prob`)", class_names)
    count = len(indices)
    columns = min(count, max(1, int(math.ceil(math.sqrt(count)))))
    rows = int(math.ceil(count / columns))
    figure = Figure(figsize=(2.1 * columns, 2.4 * rows + 0.4))
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for axis in axes:
        axis.axis("off")
    for axis, index, loss in zip(axes, indices, losses):
        true, predicted = int(labels[index]), int(np.argmax(probs[index]))
        image = _display_image(array[index])
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None,
                    vmin=0.0, vmax=1.0, interpolation="nearest")
        title = (f"true {class_names[true]} / pred {class_names[predicted]}"
                 f"\np={probs[index, predicted]:.2f}")
        if predicted != true:
            title += f" (true {probs[index, true]:.2f})"
        title += f"\nloss {loss:.2f}"
        axis.set_title(title, fontsize=7,
                       color="C3" if predicted != true else "black")
    figure.suptitle(f"Top {count} losses: true / predicted, probability",
                    fontsize=9)
    figure.tight_layout()
    path = os.fspath(path)
    figure.savefig(path, format="png", dpi=100)
    return path
