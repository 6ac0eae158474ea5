"""Reading loss curves: turns a training history into findings and advice.

The rules follow the "Monitor and visualize the loss curve" slides of the
course (CNN Training 2, and CNNs: Practical Tips): big train/validation gap
means overfitting, no gap with a high loss means underfitting, a flat loss
means nothing is learned, a plateau then a drop means a poor initialisation,
NaNs or an exploding loss mean the learning rate is too high, a curve still
falling means training stopped too early, and a jagged validation curve means
the validation set is too small.
"""

import dataclasses
import math
import os
import textwrap
from typing import NamedTuple

import keras
import numpy as np

from kerascnn import _validation

CODES = (
    "diverging",
    "not_learning",
    "slow_start",
    "overfitting",
    "underfitting",
    "not_converged",
    "noisy_validation",
    "healthy",
)

ADVICE = {
    "diverging": (
        "The learning rate is too high or the model is numerically unstable: "
        "lower the learning rate (find one with find_learning_rate), clip "
        "gradients, check the inputs for NaN/inf, add batch normalization."
    ),
    "not_learning": (
        "The gradients are not changing the weights: check that the loss "
        "matches the labels and the output layer, that the layers are "
        "trainable and the optimizer is applied, and that the learning rate "
        "is not tiny (run find_learning_rate)."
    ),
    "slow_start": (
        "The initial weights are probably too small (or the first learning "
        "rate too low): use He initialisation for ReLU layers, add batch "
        "normalization, or warm up to a larger learning rate."
    ),
    "overfitting": (
        "The model is too large for the data: increase regularization (L2, "
        "dropout, DropConnect, max-norm), augment the data, collect more "
        "data, or stop early (EarlyStopping with restore_best_weights)."
    ),
    "underfitting": (
        "There is no gap but the loss stays high: increase the model "
        "capacity (more filters or layers), train longer, or reduce "
        "regularization."
    ),
    "not_converged": (
        "The loss was still falling when training ended: train longer (more "
        "epochs) or use a larger or cyclical learning rate."
    ),
    "noisy_validation": (
        "The validation curve jumps around its trend: the validation set is "
        "too small for its statistics to be meaningful; use a larger "
        "validation split or cross-validation."
    ),
    "healthy": (
        "Training and validation loss fell and level off together; nothing "
        "to fix."
    ),
}

DEFAULT_THRESHOLDS = {
    # diverging: the training loss ends above this multiple of its minimum,
    "explode_ratio": 2.0,
    # ... or above its first value by this fraction (it went up overall).
    "rise_tolerance": 0.1,
    # not_learning: the training loss fell by less than this fraction,
    "flat_tolerance": 0.02,
    # ... or never got below (1 - chance_tolerance) * ln(num_classes).
    "chance_tolerance": 0.05,
    # slow_start: the first epochs (at least 2 and this fraction of all)
    # fell by less than `slow_start_drop` of the total fall.
    "slow_start_fraction": 0.2,
    "slow_start_drop": 0.05,
    # overfitting: validation loss ends this fraction above its minimum
    # while the train/validation gap grew,
    "overfit_rise": 0.1,
    # ... or the final gap is this fraction of the validation loss and at
    # least `gap_floor` nats (a gap of 0.03 between losses of 0.06 and 0.09
    # is a well-fitted model, not an overfitted one).
    "gap_ratio": 0.3,
    "gap_floor": 0.05,
    # underfitting: |gap| below this fraction of the validation loss and a
    # high loss: above `high_loss_fraction * ln(num_classes)` or a final
    # training accuracy below `underfit_accuracy`.
    "no_gap_ratio": 0.1,
    "high_loss_fraction": 0.5,
    "underfit_accuracy": 0.9,
    # not_converged: over the last `converge_window` epochs the loss fell by
    # more than `converge_slope` (relative) per epoch.
    "converge_slope": 0.01,
    "converge_window": 3,
    # noisy_validation: the validation loss changes direction in at least
    # `noise_fraction` of the epochs (the training loss does not), with a
    # median swing above `noise_floor` of its mean level.
    "noise_fraction": 0.4,
    "noise_floor": 0.02,
}


class Finding(NamedTuple):
    """One diagnosis: `code` (see `CODES`) and a plain-language `message`
    (what was seen, then what to do)."""

    code: str
    message: str


def _check_thresholds(thresholds):
    unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
    if unknown:
        _validation.fail(
            unknown[0],
            "a known threshold (one of " + ", ".join(DEFAULT_THRESHOLDS) + ")",
            thresholds[unknown[0]],
        )
    checked = dict(DEFAULT_THRESHOLDS)
    for name, value in thresholds.items():
        if name == "converge_window":
            checked[name] = _validation.check_positive_int(name, value)
        elif name == "explode_ratio":
            checked[name] = _validation.check_float(name, value, 1.0,
                                                    min_open=True)
        elif name in ("underfit_accuracy", "noise_fraction"):
            checked[name] = _validation.check_float(name, value, 0.0, 1.0)
        else:
            checked[name] = _validation.check_positive_float(name, value)
    return checked


def _as_history(history):
    raw = getattr(history, "history", history)
    if not isinstance(raw, dict):
        _validation.fail("history", "a keras History or a dict of lists",
                         type(history).__name__)
    if "loss" not in raw:
        _validation.fail("history", "a history with a 'loss' entry",
                         f"keys {sorted(raw)}")
    curves = {}
    for key, values in raw.items():
        try:
            array = np.asarray(values, np.float64).reshape(-1)
        except (TypeError, ValueError):
            _validation.fail("history", f"numbers under {key!r}", values)
        curves[str(key)] = array
    count = len(curves["loss"])
    if count == 0:
        _validation.fail("history", "a history with at least one epoch of "
                         "'loss'", "an empty loss list")
    for key, array in curves.items():
        if len(array) != count:
            raise _validation.ArgumentError(
                "Argument `history` must hold one value per epoch for every "
                f"key. Received: {count} 'loss' values and {len(array)} "
                f"{key!r} values"
            )
    return curves


def _accuracy_key(curves, prefix=""):
    for name in ("accuracy", "acc", "sparse_categorical_accuracy",
                 "categorical_accuracy", "binary_accuracy"):
        if prefix + name in curves:
            return prefix + name
    return None


def _trend(values):
    """Centred 3-point moving average (2 points at the ends)."""
    if len(values) < 3:
        return np.asarray(values, np.float64)
    padded = np.concatenate([[np.nan], values, [np.nan]])
    stacked = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    return np.nanmean(stacked, axis=0)


def _zigzag(values):
    """Fraction of epochs where the curve changes direction, and the median
    size of those swings relative to the mean level of the curve."""
    steps = np.diff(values)
    if len(steps) < 2:
        return 0.0, 0.0
    turns = np.sign(steps[1:]) * np.sign(steps[:-1]) < 0
    if not turns.any():
        return 0.0, 0.0
    swings = np.minimum(np.abs(steps[1:]), np.abs(steps[:-1]))[turns]
    level = float(np.mean(np.abs(values))) or 1.0
    return float(np.mean(turns)), float(np.median(swings)) / level


def diagnose_history(history, num_classes=None, **thresholds):
    """Diagnoses a training history the way the lecture reads loss curves.

    Keras records the curves; this reads them. Each rule below yields a
    `Finding(code, message)` whose message says what was seen and what to
    do (the slides' advice); no finding gives `"healthy"`. Thresholds are
    keyword arguments (defaults in `DEFAULT_THRESHOLDS`):

    * `"diverging"`: a NaN/inf loss, or the training loss ends above
      `explode_ratio` x its minimum (or x ln(`num_classes`), the loss of a
      uniform guess) or `rise_tolerance` above its start. When found, only
      this finding is reported.
    * `"not_learning"`: the training loss fell by less than `flat_tolerance`
      (relative), or stayed within `chance_tolerance` of ln(`num_classes`),
      the loss of a uniform guess.
    * `"slow_start"`: the first epochs (at least 2 and
      `slow_start_fraction` of them) fell by less than `slow_start_drop` of
      the total fall, and then the loss dropped.
    * `"overfitting"`: the validation loss ends `overfit_rise` above its
      minimum while the gap to the training loss grew, or the final gap is
      more than `gap_ratio` of the validation loss and more than `gap_floor`
      (both read on 3-epoch
      centred averages, and the rise must exceed twice the scatter of the
      validation loss around them, so a noisy curve is not overfitting).
    * `"underfitting"`: the gap is under `no_gap_ratio` of the validation
      loss (or there is no validation curve) while the loss stays high:
      above `high_loss_fraction` x ln(`num_classes`) or a final training
      accuracy under `underfit_accuracy`. Without `num_classes` or an
      accuracy curve this rule is skipped.
    * `"not_converged"`: the validation loss (the training loss without one)
      fell more than `converge_slope` (relative) per epoch over the last
      `converge_window` epochs and in the last epoch, and ends at its
      minimum.
    * `"noisy_validation"`: the validation loss changes direction in at
      least `noise_fraction` of the epochs with a median swing above
      `noise_floor` of its level, while the training loss does not zig-zag
      (5 epochs or more).

    Args:
        history: A `keras.callbacks.History` (what `fit` returns) or a dict
            of per-epoch lists with at least `"loss"`; `"val_loss"` and
            `"accuracy"`/`"val_accuracy"` are used when present.
        num_classes: `None` or an integer >= 2, enabling the
            chance-level checks. Defaults to `None`.
        **thresholds: Overrides for `DEFAULT_THRESHOLDS`.

    Returns:
        A `Diagnosis`.
    """
    curves = _as_history(history)
    if num_classes is not None:
        num_classes = _validation.check_int("num_classes", num_classes, 2)
    limits = _check_thresholds(thresholds)
    findings = _diagnose(curves, num_classes, limits)
    if not findings:
        findings = [Finding("healthy", ADVICE["healthy"])]
    return Diagnosis(findings=findings, history={k: v.tolist() for k, v in
                                                 curves.items()},
                     num_classes=num_classes, thresholds=limits)


def _say(code, observation):
    return Finding(code, f"{observation} {ADVICE[code]}")


def _diagnose(curves, num_classes, t):
    loss = curves["loss"]
    val = curves.get("val_loss")
    n = len(loss)
    findings = []

    for key in ("loss", "val_loss"):
        if key in curves and not np.all(np.isfinite(curves[key])):
            epoch = int(np.argmin(np.isfinite(curves[key]))) + 1
            bad = curves[key][epoch - 1]
            return [_say("diverging",
                         f"`{key}` became {bad} at epoch {epoch}.")]
    low = float(np.min(loss))
    if n >= 2 and loss[-1] > t["explode_ratio"] * low and low > 0:
        return [_say("diverging",
                     f"The training loss rose to {loss[-1]:.4g}, more than "
                     f"{t['explode_ratio']:g} x its minimum {low:.4g}.")]
    if n >= 2 and loss[-1] > (1 + t["rise_tolerance"]) * loss[0] > 0:
        return [_say("diverging",
                     f"The training loss went up from {loss[0]:.4g} to "
                     f"{loss[-1]:.4g} (or the update has the wrong sign).")]

    chance = math.log(num_classes) if num_classes else None
    if chance and loss[-1] > t["explode_ratio"] * chance:
        return [_say("diverging",
                     f"The training loss ended at {loss[-1]:.4g}, more than "
                     f"{t['explode_ratio']:g} x ln({num_classes}) = "
                     f"{chance:.4g}, the loss of guessing uniformly: the "
                     "updates overshoot.")]
    fell = (loss[0] - low) / abs(loss[0]) if loss[0] else 0.0
    if n >= 2 and fell < t["flat_tolerance"]:
        findings.append(_say(
            "not_learning",
            f"The training loss barely moved ({loss[0]:.4g} -> {low:.4g} at "
            f"best, {100 * fell:.1f}%)."))
    elif chance and low >= (1 - t["chance_tolerance"]) * chance:
        findings.append(_say(
            "not_learning",
            f"The training loss stayed at {low:.4g}, about ln({num_classes})"
            f" = {chance:.4g}, the loss of guessing uniformly."))
    learning = not findings

    if learning and n >= 4:
        drop = loss[0] - low
        flat = loss[0] - loss < t["slow_start_drop"] * drop
        plateau = int(np.argmin(flat)) if not flat.all() else n
        needed = max(2, math.ceil(t["slow_start_fraction"] * n))
        if needed <= plateau < n - 1:
            findings.append(_say(
                "slow_start",
                f"The loss stayed flat for the first {plateau} epochs, then "
                "dropped."))

    if learning and val is not None and n >= 2:
        # Read the trend, so one noisy epoch is neither a minimum nor a rise.
        trend, train_trend = _trend(val), _trend(loss)
        best = int(np.argmin(trend))
        gap = trend - train_trend
        rise = (trend[-1] - trend[best]) / abs(trend[best]) if trend[best] \
            else 0.0
        # A rise smaller than twice the scatter around the trend is noise.
        scatter = float(np.std((val - trend)[1:-1])) if n >= 3 else 0.0
        if (best < n - 1 and rise > t["overfit_rise"] and gap[-1] > gap[best]
                and trend[-1] - trend[best] > 2 * scatter):
            findings.append(_say(
                "overfitting",
                f"The validation loss rose {100 * rise:.0f}% from its minimum "
                f"{trend[best]:.4g} (epoch {best + 1}, 3-epoch average) while "
                f"the training loss kept falling; the gap grew from "
                f"{gap[best]:.4g} to {gap[-1]:.4g}."))
        elif (val[-1] > 0 and gap[-1] > t["gap_ratio"] * trend[-1]
              and gap[-1] > t["gap_floor"]):
            findings.append(_say(
                "overfitting",
                f"Big gap: validation loss {val[-1]:.4g} vs training loss "
                f"{loss[-1]:.4g} at the end."))

    overfitting = any(f.code == "overfitting" for f in findings)
    if learning and not overfitting:
        no_gap = val is None or abs(val[-1] - loss[-1]) <= (
            t["no_gap_ratio"] * abs(val[-1]))
        accuracy = _accuracy_key(curves)
        reasons = []
        if chance and loss[-1] > t["high_loss_fraction"] * chance:
            reasons.append(
                f"the training loss {loss[-1]:.4g} is above "
                f"{t['high_loss_fraction']:g} x ln({num_classes})")
        if accuracy and curves[accuracy][-1] < t["underfit_accuracy"]:
            reasons.append(
                f"the training accuracy is {curves[accuracy][-1]:.3g}")
        if no_gap and reasons:
            gap_text = ("no gap between training and validation loss"
                        if val is not None else "no validation curve")
            findings.append(_say(
                "underfitting", f"High loss with {gap_text}: "
                + " and ".join(reasons) + "."))

    if learning and not overfitting and n >= 2:
        series = val if val is not None else loss
        name = "validation" if val is not None else "training"
        window = min(t["converge_window"], n - 1)
        end = series[-1]
        slope = (series[-1 - window] - end) / abs(end) / window if end else 0
        last = (series[-2] - end) / abs(end) if end else 0
        if (slope > t["converge_slope"] and last > t["converge_slope"]
                and end <= np.min(series) * 1.001):
            findings.append(_say(
                "not_converged",
                f"The {name} loss fell {100 * slope:.1f}% per epoch over the "
                f"last {window} epochs ({100 * last:.1f}% in the last one) "
                "and is at its lowest at the end."))

    if val is not None and n >= 5:
        turns, swing = _zigzag(val)
        train_turns, _ = _zigzag(loss)
        if (turns >= t["noise_fraction"] and swing > t["noise_floor"]
                and train_turns < t["noise_fraction"]):
            findings.append(_say(
                "noisy_validation",
                f"The validation loss changes direction in "
                f"{100 * turns:.0f}% of the epochs (typical swing "
                f"{100 * swing:.1f}% of its level) while the training loss "
                "is smooth."))
    return findings


@dataclasses.dataclass
class Diagnosis:
    """What `diagnose_history` found.

    Attributes:
        findings: List of `Finding(code, message)`; `[("healthy", ...)]`
            when nothing is wrong.
        history: The per-epoch curves that were read (dict of lists).
        num_classes: The `num_classes` used, or `None`.
        thresholds: The thresholds used (defaults plus overrides).
    """

    findings: list
    history: dict
    num_classes: int = None
    thresholds: dict = None

    @property
    def codes(self):
        """The finding codes, in order."""
        return [finding.code for finding in self.findings]

    @property
    def healthy(self):
        return self.codes == ["healthy"]

    def summary(self):
        """Plain text: one line on the run, then one line per finding."""
        loss = self.history["loss"]
        head = f"Loss-curve diagnosis ({len(loss)} epochs, final loss " \
               f"{loss[-1]:.4g}"
        if "val_loss" in self.history:
            head += f", final val_loss {self.history['val_loss'][-1]:.4g}"
        lines = [head + "):"]
        lines += [f"- {f.code}: {f.message}" for f in self.findings]
        return "\n".join(lines)

    def to_dict(self):
        return {
            "codes": self.codes,
            "findings": [{"code": f.code, "message": f.message,
                          "advice": ADVICE[f.code]} for f in self.findings],
            "num_classes": self.num_classes,
            "thresholds": dict(self.thresholds or {}),
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def plot(self, path):
        """Saves the loss (and accuracy) curves with the findings as a PNG."""
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            _validation.fail("path", "a file path", path)
        # A Figure on its own Agg canvas: pyplot's global backend (e.g. the
        # user's notebook inline backend) is left alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        accuracy = _accuracy_key(self.history)
        panels = 2 if accuracy else 1
        figure = Figure(figsize=(5.5 * panels, 4.2))
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, panels, squeeze=False)
        epochs = np.arange(1, len(self.history["loss"]) + 1)
        pairs = [("loss", "val_loss", "loss")]
        if accuracy:
            pairs.append((accuracy, "val_" + accuracy, "accuracy"))
        for axis, (train_key, val_key, label) in zip(axes[0], pairs):
            axis.plot(epochs, self.history[train_key], "o-",
                      label="training")
            if val_key in self.history:
                axis.plot(epochs, self.history[val_key], "s-",
                          label="validation")
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            axis.legend()
        axes[0][0].set_title(", ".join(self.codes))
        width = 95 * panels
        lines = []
        for finding in self.findings:
            lines += textwrap.wrap(f"{finding.code}: {finding.message}",
                                   width)
        height = figure.get_figheight()
        figure.set_figheight(height + 0.13 * len(lines))
        figure.text(0.01, 0.01, "\n".join(lines), fontsize=6,
                    va="bottom", family="monospace")
        figure.tight_layout(
            rect=(0, 0.13 * len(lines) / figure.get_figheight() + 0.01,
                  1, 1))
        figure.savefig(os.fspath(path), format="png")
        return path


class LossCurveDiagnosis(keras.callbacks.Callback):
    """Diagnoses the loss curves when training ends.

    Keras' `History` records the curves; this callback reads them with
    `diagnose_history` at `on_train_end`, prints the summary (`verbose=1`),
    optionally saves a PNG, and keeps the result in `diagnosis`.

    Args:
        plot_path: `None` or a path for the PNG. Defaults to `None`.
        verbose: 0 (silent) or 1 (print the summary). Defaults to `1`.
        num_classes: `None` or an integer >= 2 (chance-level checks).
            Defaults to `None`.
        **thresholds: Overrides for `DEFAULT_THRESHOLDS`.
    """

    def __init__(self, plot_path=None, verbose=1, num_classes=None,
                 **thresholds):
        super().__init__()
        if plot_path is not None and (
                not isinstance(plot_path, (str, os.PathLike))
                or not os.fspath(plot_path)):
            _validation.fail("plot_path", "None or a file path", plot_path)
        self.plot_path = plot_path
        self.verbose = _validation.check_int("verbose", verbose, 0, 1)
        if num_classes is not None:
            num_classes = _validation.check_int("num_classes", num_classes, 2)
        self.num_classes = num_classes
        self.thresholds = dict(thresholds)
        _check_thresholds(self.thresholds)
        self.diagnosis = None
        self._curves = {}

    def on_train_begin(self, logs=None):
        self.diagnosis = None
        self._curves = {}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            try:
                value = float(np.asarray(value))
            except (TypeError, ValueError):
                continue
            self._curves.setdefault(key, []).append(value)

    def on_train_end(self, logs=None):
        if not self._curves.get("loss"):
            return
        count = len(self._curves["loss"])
        curves = {k: v for k, v in self._curves.items() if len(v) == count}
        self.diagnosis = diagnose_history(curves, self.num_classes,
                                          **self.thresholds)
        if self.verbose:
            print(self.diagnosis.summary())
        if self.plot_path is not None:
            self.diagnosis.plot(self.plot_path)
