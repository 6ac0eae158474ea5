"""The learning-rate range test (Smith 2017, section 3.3)."""

import dataclasses
import math
import os

import keras
import numpy as np

from kerascnn import _compat, _validation

def _check_finder_args(min_lr, max_lr, num_steps, beta, divergence_factor):
    min_lr = _validation.check_positive_float("min_lr", min_lr)
    max_lr = _validation.check_positive_float("max_lr", max_lr)
    if max_lr <= min_lr:
        raise _validation.ArgumentError(
            "Argument `min_lr` must be < `max_lr`. "
            f"Received: min_lr={min_lr!r}, max_lr={max_lr!r}"
        )
    num_steps = _validation.check_int("num_steps", num_steps, min_value=5)
    beta = _validation.check_float("beta", beta, 0.0, 1.0, max_open=True)
    divergence_factor = _validation.check_float(
        "divergence_factor", divergence_factor, 1.0, min_open=True
    )
    return min_lr, max_lr, num_steps, beta, divergence_factor


def _check_plot_path(plot_path):
    if plot_path is not None and (
        not isinstance(plot_path, (str, os.PathLike)) or not os.fspath(plot_path)
    ):
        _validation.fail("plot_path", "None or a file path", plot_path)
    return plot_path


def _check_float_learning_rate(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(model, "compiled", False):
        _validation.fail(
            "model", "a compiled model (call `model.compile(optimizer=..., "
            "loss=...)` first)", model
        )
    if not isinstance(_compat.learning_rate_object(optimizer), keras.Variable):
        raise _validation.ArgumentError(
            "Argument `model` must be compiled with an optimizer whose "
            "`learning_rate` is a float (the range test sets it batch by "
            "batch; compile with the schedule after the test). Received: "
            "model with optimizer learning_rate="
            f"{type(_compat.learning_rate_object(optimizer)).__name__}"
        )
    if getattr(model, "steps_per_execution", 1) != 1:
        _validation.fail(
            "model", "compiled with steps_per_execution=1 (the range test "
            "changes the learning rate between batches)",
            f"steps_per_execution={model.steps_per_execution}")
    return optimizer


def suggest_bounds(learning_rates, smoothed_losses, low=0.1, high=0.9):
    """Reads the CLR bounds off a range test, as Smith describes.

    Smith: the lower bound is where the loss starts to fall, the upper bound
    where it stops falling (or gets ragged). Only the smoothed curve up to
    its minimum counts, and its first tenth is skipped (the bias-corrected
    average of the first few batches is noisy). With `slope` the derivative
    of the smoothed loss with respect to log(learning rate):

    * lower bound: the start of the descent that contains the steepest
      slope, i.e. the first learning rate after the last point (before the
      steepest one) where the loss fell slower than `low` times the steepest
      slope;
    * upper bound: the first learning rate after that at which the loss has
      covered `high` of its fall from the lower bound to the minimum.

    Returns `None` when the loss never fell by 1%.

    Args:
        learning_rates: 1-D increasing sequence, the learning rate of each
            step.
        smoothed_losses: 1-D sequence, the smoothed loss of each step; the
            part from the first NaN/inf on is ignored.
        low: Float in (0, 1), see above. Defaults to `0.1`.
        high: Float in (0, 1], see above. Defaults to `0.9`.

    Returns:
        `(initial_learning_rate, maximal_learning_rate)` or `None`.
    """
    low = _validation.check_float("low", low, 0.0, 1.0, min_open=True,
                                  max_open=True)
    high = _validation.check_float("high", high, 0.0, 1.0, min_open=True)
    lrs = np.asarray(learning_rates, np.float64)
    smoothed = np.asarray(smoothed_losses, np.float64)
    finite = np.isfinite(smoothed)
    if not finite.all():  # keep the part before the first NaN/inf
        cut = int(np.argmin(finite))
        lrs, smoothed = lrs[:cut], smoothed[:cut]
    if len(smoothed) < 3:
        return None
    skip = len(smoothed) // 10
    best = skip + int(np.argmin(smoothed[skip:]))
    if best - skip < 2:
        return None
    peak = skip + int(np.argmax(smoothed[skip: best + 1]))
    if smoothed[peak] - smoothed[best] <= 0.01 * abs(smoothed[peak]):
        return None
    curve = smoothed[peak: best + 1]
    slope = np.gradient(curve, np.log(lrs[peak: best + 1]))
    steepest = int(np.argmin(slope))
    slow = np.flatnonzero(slope[: steepest + 1] > low * slope[steepest])
    lower = int(slow[-1]) + 1 if slow.size else 0
    lower = min(lower, steepest)
    target = curve[lower] - high * (curve[lower] - curve[-1])
    upper = lower + int(np.argmax(curve[lower:] <= target))
    if upper == lower:
        upper = min(lower + 1, len(curve) - 1)
    return float(lrs[peak + lower]), float(lrs[peak + upper])


@dataclasses.dataclass
class LRFinderResult:
    """The outcome of a learning-rate range test.

    Attributes:
        learning_rates: 1-D array, the learning rate of each batch.
        losses: 1-D array, each batch's training loss.
        smoothed_losses: 1-D array, the bias-corrected exponential moving
            average of `losses` (what the suggestion is read from).
        suggested: `(initial_learning_rate, maximal_learning_rate)` for the
            cyclical schedules in `kerascnn.schedules`, or `None` when the
            loss never fell (then widen `min_lr`/`max_lr` or check the
            model and data).
        stop_reason: Plain words: why the test ended.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggested: tuple
    stop_reason: str

    def summary(self):
        """A few lines of text describing the test and its suggestion."""
        lines = [
            f"Learning-rate range test: {len(self.learning_rates)} steps from "
            f"{self.learning_rates[0]:.3g} to {self.learning_rates[-1]:.3g} "
            f"({self.stop_reason})."
        ]
        if self.suggested is None:
            lines.append(
                "No suggestion: the loss never fell. Widen the range or check "
                "the model, the loss and the labels."
            )
        else:
            low, high = self.suggested
            lines.append(
                f"Suggested cyclical bounds: initial_learning_rate={low:.3g}, "
                f"maximal_learning_rate={high:.3g} (a constant learning rate "
                f"near {high:.3g} / 3 is a reasonable single value)."
            )
        return "\n".join(lines)

    def to_dict(self):
        return {
            "learning_rates": [float(v) for v in self.learning_rates],
            "losses": [float(v) for v in self.losses],
            "smoothed_losses": [float(v) for v in self.smoothed_losses],
            "suggested": None if self.suggested is None else list(self.suggested),
            "stop_reason": self.stop_reason,
        }

    def plot(self, path):
        """Saves loss vs. learning rate (log scale) as a PNG; returns `path`."""
        _check_plot_path(path)
        if path is None:
            _validation.fail("path", "a file path", path)
        # A Figure on its own Agg canvas: pyplot's global backend is left
        # alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        axis = figure.add_subplot(1, 1, 1)
        axis.plot(self.learning_rates, self.losses, color="0.75",
                  label="batch loss")
        axis.plot(self.learning_rates, self.smoothed_losses, color="C0",
                  label="smoothed loss")
        axis.set_xscale("log")
        finite = np.asarray(self.smoothed_losses)[
            np.isfinite(self.smoothed_losses)]
        if finite.size:
            top = min(float(np.max(finite)),
                      4.0 * float(np.min(finite)) + 1e-12)
            raw = np.asarray(self.losses)[np.isfinite(self.losses)]
            bottom = float(min(np.min(finite), np.min(raw)))
            pad = 0.05 * max(top - bottom, 1e-12)
            axis.set_ylim(bottom - pad, top + pad)
        if self.suggested is not None:
            for value, name in zip(self.suggested, ("initial", "maximal")):
                axis.axvline(value, color="C3", linestyle="--")
                axis.annotate(f"{name}\n{value:.2g}", (value, 0.95),
                              xycoords=("data", "axes fraction"),
                              ha="center", va="top", fontsize=8)
        axis.set_xlabel("learning rate (log scale)")
        axis.set_ylabel("training loss")
        axis.set_title("Learning-rate range test")
        axis.legend(loc="lower left")
        figure.tight_layout()
        figure.savefig(os.fspath(path), format="png")
        return path


class LearningRateFinder(keras.callbacks.Callback):
    """Runs the learning-rate range test inside `model.fit`.

    Keras has no range test. This callback raises the learning rate
    exponentially from `min_lr` to `max_lr` over `num_steps` batches,
    records each batch's loss (metrics are reset before every batch, so the
    loss is that batch's, not Keras' running mean), smooths it with a
    bias-corrected exponential moving average and stops training when the
    smoothed loss exceeds `divergence_factor` times its best, when a loss is
    NaN/inf, or after `num_steps` batches. At the end it puts back the
    model's variables and the optimizer's (slots, `iterations`, learning
    rate) exactly as they were, and stores `result` (an `LRFinderResult`).
    `find_learning_rate` wraps it with data handling.

    Args:
        min_lr: Float > 0, the first learning rate. Defaults to `1e-7`.
        max_lr: Float > `min_lr`, the last learning rate. Defaults to `10.0`.
        num_steps: Integer >= 5, batches from `min_lr` to `max_lr`.
            Defaults to `100`.
        beta: Float in [0, 1), the smoothing factor. Defaults to `0.98`.
        divergence_factor: Float > 1; stop once the smoothed loss exceeds
            this times its minimum. Defaults to `4.0`.
        restore: Boolean, put the weights and optimizer state back at the
            end. Defaults to `True`.

    The model's optimizer must have a float learning rate (not a schedule).

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks",
        WACV 2017, section 3.3.
    """

    def __init__(self, min_lr=1e-7, max_lr=10.0, num_steps=100, beta=0.98,
                 divergence_factor=4.0, restore=True):
        super().__init__()
        (self.min_lr, self.max_lr, self.num_steps, self.beta,
         self.divergence_factor) = _check_finder_args(
            min_lr, max_lr, num_steps, beta, divergence_factor)
        self.restore = _validation.check_bool("restore", restore)
        self.result = None
        self._reset()

    def _reset(self):
        self.learning_rates, self.losses, self.smoothed_losses = [], [], []
        self.stop_reason = None
        self._average = 0.0
        self._best = math.inf
        self._saved = None

    def learning_rate_at(self, step):
        """The learning rate used at batch `step` (0-based)."""
        ratio = self.max_lr / self.min_lr
        return self.min_lr * ratio ** (step / (self.num_steps - 1))

    def _state_variables(self):
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        return list(self.model.variables) + list(optimizer.variables)

    def on_train_begin(self, logs=None):
        _check_float_learning_rate(self.model)
        self._reset()
        self.result = None
        if self.restore:
            variables = self._state_variables()
            self._saved = [(v, np.array(v.numpy(), copy=True))
                           for v in variables]

    def on_train_batch_begin(self, batch, logs=None):
        step = len(self.learning_rates)
        rate = self.learning_rate_at(step)
        self.model.optimizer.learning_rate = rate
        self.model.reset_metrics()
        self.learning_rates.append(rate)

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_reason is not None:
            return
        step = len(self.losses)
        loss = float(np.asarray((logs or {}).get("loss", np.nan)))
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.smoothed_losses.append(math.nan)
            return self._stop(
                f"the loss became {loss} at learning rate "
                f"{self.learning_rates[-1]:.3g}")
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** (step + 1))
        self.smoothed_losses.append(smoothed)
        if step > 0 and smoothed > self.divergence_factor * self._best:
            return self._stop(
                f"the smoothed loss diverged (> {self.divergence_factor:g} x "
                f"its minimum) at learning rate {self.learning_rates[-1]:.3g}")
        self._best = min(self._best, smoothed)
        if step + 1 >= self.num_steps:
            self._stop(f"reached max_lr={self.max_lr:g}")

    def _stop(self, reason):
        self.stop_reason = reason
        self.model.stop_training = True

    def on_train_end(self, logs=None):
        count = len(self.losses)
        if self.stop_reason is None:
            self.stop_reason = f"the data ran out after {count} batches"
        if self._saved is not None:
            for variable, value in self._saved:
                variable.assign(value)
            self._saved = None
        lrs = np.asarray(self.learning_rates[:count], np.float64)
        smoothed = np.asarray(self.smoothed_losses, np.float64)
        self.result = LRFinderResult(
            learning_rates=lrs,
            losses=np.asarray(self.losses, np.float64),
            smoothed_losses=smoothed,
            suggested=suggest_bounds(lrs, smoothed) if count else None,
            stop_reason=self.stop_reason,
        )


class _Batches(keras.utils.PyDataset):
    """Seeded, reshuffled-every-pass batches of in-memory arrays."""

    def __init__(self, x, y, batch_size, num_steps, seed):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        rng = np.random.default_rng(seed)
        per_pass = len(x) // batch_size
        passes = -(-num_steps // per_pass)
        order = [rng.permutation(len(x))[: per_pass * batch_size]
                 for _ in range(passes)]
        self.index = np.concatenate(order)[: num_steps * batch_size]
        self.num_steps = num_steps

    def __len__(self):
        return self.num_steps

    def __getitem__(self, step):
        rows = self.index[step * self.batch_size:(step + 1) * self.batch_size]
        return self.x[rows], self.y[rows]


def find_learning_rate(model, data, min_lr=1e-7, max_lr=10.0, num_steps=100,
                       beta=0.98, divergence_factor=4.0, batch_size=32,
                       plot_path=None, seed=42, verbose=0):
    """Runs the learning-rate range test and suggests CLR bounds.

    Keras and KerasTuner have no range test. This trains `model` for at most
    `num_steps` batches with a learning rate rising exponentially from
    `min_lr` to `max_lr`, then puts the model's weights and the optimizer's
    state (slots, `iterations`, learning rate) back exactly, so the same
    model can be trained next. Smith (2017, 3.3): "note the learning rate
    value when the accuracy starts to increase and when the accuracy slows,
    becomes ragged, or starts to fall"; `suggested` reads those two points
    off the smoothed loss (see `suggest_bounds`). The same `seed`, model
    state and data give the same answer.

    Args:
        model: A compiled Keras model whose optimizer has a float learning
            rate.
        data: `(x, y)` NumPy arrays (shuffled with `seed`, batches of
            `batch_size`) or a batched `tf.data.Dataset` of `(x, y)` (used as
            given and repeated).
        min_lr: Float > 0. Defaults to `1e-7`.
        max_lr: Float > `min_lr`. Defaults to `10.0`.
        num_steps: Integer >= 5, the number of batches. Defaults to `100`.
        beta: Float in [0, 1), loss smoothing. Defaults to `0.98`.
        divergence_factor: Float > 1, stop when the smoothed loss exceeds
            this times its minimum. Defaults to `4.0`.
        batch_size: Positive integer <= the number of samples (arrays only).
            Defaults to `32`.
        plot_path: `None` or a path for a PNG of loss vs. learning rate.
            Defaults to `None`.
        seed: Integer, the shuffling seed for arrays. Defaults to `42`.
        verbose: 0, 1 or 2, passed to `fit`. Defaults to `0`.

    Returns:
        An `LRFinderResult`; `result.suggested` is
        `(initial_learning_rate, maximal_learning_rate)` for
        `kerascnn.schedules.TriangularCyclicalLearningRate` and friends.

    Example:

    ```python
    result = kerascnn.callbacks.find_learning_rate(model, (x, y))
    low, high = result.suggested
    schedule = kerascnn.schedules.TriangularCyclicalLearningRate(
        low, high, step_size=4 * len(x) // 32)
    ```
    """
    finder = LearningRateFinder(min_lr, max_lr, num_steps, beta,
                                divergence_factor)
    _check_plot_path(plot_path)
    seed = _validation.check_int("seed", seed)
    verbose = _validation.check_int("verbose", verbose, 0, 2)
    _check_float_learning_rate(model)
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        inputs = {"x": data.repeat(), "steps_per_epoch": finder.num_steps,
                  "shuffle": False}
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if x.ndim == 0 or len(x) == 0:
            _validation.fail("data", "(x, y) with at least one sample",
                             f"x of shape {x.shape}")
        if y.ndim == 0 or len(y) != len(x):
            raise _validation.ArgumentError(
                "Argument `data` must be (x, y) with as many labels as "
                f"samples. Received: x of shape {x.shape}, y of shape "
                f"{y.shape}")
        batch_size = _validation.check_batch_size(batch_size, len(x))
        inputs = {"x": _Batches(x, y, batch_size, finder.num_steps, seed),
                  "shuffle": False}
    else:
        _validation.fail("data", "an (x, y) tuple of arrays or a "
                         "tf.data.Dataset", type(data).__name__)
    previous_history = getattr(model, "history", None)
    try:
        model.fit(epochs=1, callbacks=[finder], verbose=verbose, **inputs)
    finally:
        if finder._saved is not None:  # fit failed before on_train_end
            for variable, value in finder._saved:
                variable.assign(value)
            finder._saved = None
        model.stop_training = False
        if previous_history is not None:
            model.history = previous_history
    result = finder.result
    if plot_path is not None:
        result.plot(plot_path)
    return result
