"""Early stopping that also stops on NaN/inf and on divergence, and says why."""

import math

import keras
import numpy as np

from kerascnn import _compat, _validation


def _as_float(value):
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return None


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Stops training when the monitored quantity stops improving.

    A drop-in for `keras.callbacks.EarlyStopping` (same arguments, a
    subclass of it, with the same defaults, so that it and Keras' behave
    alike when both are imported: pass `restore_best_weights=True` to keep
    the best model, not the last, as the slides' "stop when validation loss
    stops decreasing" means; kerascnn's workflows do). What ours adds: an
    immediate stop when the training loss of a batch
    or the monitored value of an epoch is NaN or infinite (like
    `keras.callbacks.TerminateOnNaN`, but the best weights, or the weights from
    before training if no epoch finished, are restored instead of keeping NaN
    weights); an optional `divergence_threshold`; and two attributes readable
    after `fit`: `stop_reason` (plain words) and `best_epoch` (0-based, `None`
    if no epoch was monitored). State is reset in `on_train_begin`, so one
    instance can serve several `fit` calls.

    Args:
        monitor: Quantity to be monitored. Defaults to `"val_loss"`.
        min_delta: Number >= 0, the minimum change that counts as an
            improvement. Defaults to `0`.
        patience: Integer >= 0, epochs without improvement before stopping.
            Defaults to `0`.
        verbose: 0 or 1; 1 prints the reason when training stops. Defaults
            to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        baseline: `None` or a number the monitored value must beat.
            Defaults to `None`.
        restore_best_weights: Boolean, restore the weights of the best epoch
            at the end (and on a NaN stop). Defaults to `False` (as Keras).
        start_from_epoch: Integer >= 0, warm-up epochs that are not
            monitored. Defaults to `0`.
        divergence_threshold: `None` or a number > 1. When set (only for a
            quantity that is minimized), training stops as soon as the
            monitored value exceeds `divergence_threshold * best` (with a
            positive `best`): the loss is blowing up, usually because the
            learning rate is too high. Defaults to `None`.

    Example:

    ```python
    stopper = kerascnn.callbacks.EarlyStopping(patience=3,
                                               restore_best_weights=True)
    model.fit(x, y, validation_split=0.1, epochs=50, callbacks=[stopper])
    print(stopper.stop_reason, stopper.best_epoch)
    ```
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
        divergence_threshold=None,
    ):
        monitor = _validation.check_string("monitor", monitor)
        min_delta = _validation.check_float("min_delta", min_delta, 0.0)
        patience = _validation.check_non_negative_int("patience", patience)
        verbose = _validation.check_int("verbose", verbose, 0, 2)
        mode = _validation.check_option("mode", mode, ("auto", "min", "max"))
        if baseline is not None:
            baseline = _validation.check_float("baseline", baseline)
        restore_best_weights = _validation.check_bool(
            "restore_best_weights", restore_best_weights
        )
        start_from_epoch = _validation.check_non_negative_int(
            "start_from_epoch", start_from_epoch
        )
        if divergence_threshold is not None:
            divergence_threshold = _validation.check_float(
                "divergence_threshold", divergence_threshold, 1.0,
                min_open=True,
            )
            if mode == "max":
                _validation.fail(
                    "divergence_threshold",
                    "None when mode='max' (it applies to a minimized loss)",
                    divergence_threshold,
                )
        super().__init__(
            monitor=monitor,
            min_delta=min_delta,
            patience=patience,
            verbose=verbose,
            mode=mode,
            baseline=baseline,
            restore_best_weights=restore_best_weights,
            start_from_epoch=start_from_epoch,
        )
        self.divergence_threshold = divergence_threshold
        self.stop_reason = None
        self.best_epoch = None
        self._initial_weights = None
        self._epochs_seen = 0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        _compat.check_early_stopping_state(self)
        self.best_epoch = None
        self.stop_reason = None
        self._epochs_seen = 0
        self._initial_weights = (
            self.model.get_weights() if self.restore_best_weights else None
        )

    def _stop(self, epoch, reason):
        self.stop_reason = reason
        self.stopped_epoch = epoch
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_reason is not None:
            return
        loss = _as_float((logs or {}).get("loss"))
        if loss is not None and not math.isfinite(loss):
            self._stop(
                self._epochs_seen,
                f"the training loss became {loss} at batch {batch} of epoch "
                f"{self._epochs_seen + 1}: the learning rate is probably too "
                "high (or the model is numerically unstable)",
            )

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_seen = epoch + 1
        if self.stop_reason is not None:
            return
        logs = logs or {}
        for key in dict.fromkeys(("loss", self.monitor)):
            value = _as_float(logs.get(key))
            if value is not None and not math.isfinite(value):
                self._stop(
                    epoch,
                    f"`{key}` became {value} at epoch {epoch + 1}: the "
                    "learning rate is probably too high (or the model is "
                    "numerically unstable)",
                )
                return
        super().on_epoch_end(epoch, logs)
        if self.divergence_threshold is not None and (
            self.monitor_op is not None and self.monitor_op is not keras.ops.less
        ):
            _validation.fail(
                "divergence_threshold",
                f"None when `{self.monitor}` is maximized (it applies to a "
                "minimized loss)",
                self.divergence_threshold,
            )
        if self.stopped_epoch == epoch and epoch > 0:
            self.stop_reason = (
                f"`{self.monitor}` did not improve by more than "
                f"{abs(self.min_delta)} for {self.wait} epochs (patience "
                f"{self.patience}); best {_fmt(self.best)} at epoch "
                f"{_epoch_text(self.best_epoch)}"
            )
            return
        current = _as_float(logs.get(self.monitor))
        best = _as_float(self.best)
        if (
            self.divergence_threshold is not None
            and current is not None
            and best is not None
            and best > 0
            and epoch >= self.start_from_epoch
            and current > self.divergence_threshold * best
        ):
            self._stop(
                epoch,
                f"`{self.monitor}` diverged: {_fmt(current)} at epoch "
                f"{epoch + 1} is more than {self.divergence_threshold} x the "
                f"best {_fmt(best)} (epoch {_epoch_text(self.best_epoch)}); "
                "lower the learning rate",
            )

    def on_train_end(self, logs=None):
        if self.stop_reason is None:
            self.stop_reason = (
                "completed all epochs without stopping early"
                if self.best_epoch is not None
                else f"completed without a `{self.monitor}` value to monitor"
            )
        if self.verbose > 0 and self.model.stop_training:
            print(f"EarlyStopping: stopped because {self.stop_reason}.")
        self.stopped_epoch, stopped = 0, self.stopped_epoch
        if (
            self.restore_best_weights
            and self.best_weights is None
            and self._initial_weights is not None
            and self.model.stop_training
        ):
            # Stopped (NaN) before any epoch was monitored: go back to the
            # weights training started from rather than keep NaN weights.
            self.model.set_weights(self._initial_weights)
            if self.verbose > 0:
                print("EarlyStopping: restored the weights from before "
                      "training.")
        super().on_train_end(logs)
        self.stopped_epoch = stopped
        self._initial_weights = None


def _fmt(value):
    value = _as_float(value)
    return "None" if value is None else f"{value:.6g}"


def _epoch_text(epoch):
    return "none" if epoch is None else str(epoch + 1)
