"""Learning-rate schedules by name, sized to the run that uses them.

`fit(schedule=...)` names a schedule; this module turns the name, the base
learning rate and the length of the run into a Keras `LearningRateSchedule`:

- `"cyclic"`, `"triangular2"`, `"exp_range"`: the kerascnn cyclical rates
  (Smith, 2017). The rate moves between `(low, high)`; `step_size`, the
  half cycle, is `half_cycle_epochs(epochs)` epochs, i.e. between 2 and 8
  epochs as Smith advises (2-10 x the iterations per epoch), and short
  enough that a run holds at least two cycles when it has 16 epochs or more.
  `"exp_range"` uses `gamma = 0.5 ** (1 / (2 * step_size))`, so the
  amplitude halves each cycle like `"triangular2"` but smoothly.
- `"step"`: `keras.optimizers.schedules.PiecewiseConstantDecay`, the rate
  divided by 10 at 50% and again at 75% of the run.
- `"exponential"`: `ExponentialDecay(staircase=True)`, decayed once per
  epoch so that the last epoch runs at 1/100 of the rate.
- `"inverse_time"`: `InverseTimeDecay`, ``lr / (1 + k t)`` with t in epochs
  and ``k = 9 / epochs``, so the run ends at 1/10 of the rate.
- `"one_cycle"`: one cycle (Smith & Topin, 2017, "Super-convergence"), as
  fastai's `fit_one_cycle` shapes it: the rate rises from 1/10 of the peak
  to the peak over the first `ONE_CYCLE_WARMUP` of the steps (linearly),
  then follows a cosine down to 0 by the last step; `CosineDecay` with
  `warmup_target`. The short high-rate phase explores, the long
  annealing lets a short run settle, so a fixed budget of epochs ends on
  its best weights.
"""

import math

from kerascnn.core.settings import CYCLIC_SCHEDULES, SCHEDULES  # noqa: F401

# The fraction of a one-cycle run spent warming up.
ONE_CYCLE_WARMUP = 0.15

# Smith (2017), section 3.3: the lower bound 3-4 times below the upper one.
CYCLIC_RANGE_FACTOR = 4.0


def half_cycle_epochs(epochs):
    """Epochs per half cycle: ``epochs // 4`` clipped to [2, 8]."""
    return int(min(8, max(2, epochs // 4)))


def cyclic_bounds(learning_rate):
    """Default `(low, high)` of a cyclical rate peaking at `learning_rate`."""
    return (learning_rate / CYCLIC_RANGE_FACTOR, learning_rate)


def make_schedule(name, learning_rate, steps_per_epoch, epochs, bounds=None):
    """Returns the Keras schedule `name` for a run of `epochs` epochs.

    Args:
        name: One of `SCHEDULES`.
        learning_rate: Float > 0, the base (or, for cyclical schedules, the
            maximal) rate.
        steps_per_epoch: Integer >= 1, optimizer steps per epoch.
        epochs: Integer >= 1, the length of the run.
        bounds: Optional `(low, high)` for the cyclical schedules (from the
            learning-rate range test). Defaults to
            `cyclic_bounds(learning_rate)`.
    """
    import keras  # here, so that SCHEDULES is importable without TensorFlow

    total_steps = steps_per_epoch * epochs
    if name in CYCLIC_SCHEDULES:
        from kerascnn import schedules

        low, high = bounds if bounds is not None else cyclic_bounds(
            learning_rate)
        step_size = half_cycle_epochs(epochs) * steps_per_epoch
        if name == "cyclic":
            return schedules.TriangularCyclicalLearningRate(
                initial_learning_rate=low, maximal_learning_rate=high,
                step_size=step_size)
        if name == "triangular2":
            return schedules.Triangular2CyclicalLearningRate(
                initial_learning_rate=low, maximal_learning_rate=high,
                step_size=step_size)
        return schedules.ExponentialCyclicalLearningRate(
            initial_learning_rate=low, maximal_learning_rate=high,
            step_size=step_size, gamma=0.5 ** (1.0 / (2 * step_size)))
    if name == "step":
        boundaries = sorted({max(1, total_steps // 2),
                             max(2, (3 * total_steps) // 4)})
        values = [learning_rate, learning_rate / 10, learning_rate / 100]
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=boundaries, values=values[: len(boundaries) + 1])
    if name == "exponential":
        decay_rate = 0.01 ** (1.0 / max(1, epochs - 1))
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=steps_per_epoch, decay_rate=decay_rate,
            staircase=True)
    if name == "inverse_time":
        return keras.optimizers.schedules.InverseTimeDecay(
            learning_rate, decay_steps=steps_per_epoch,
            decay_rate=9.0 / epochs)
    if name == "one_cycle":
        warmup = int(round(ONE_CYCLE_WARMUP * total_steps))
        if not warmup:  # a run too short to warm up starts at the peak
            return keras.optimizers.schedules.CosineDecay(
                learning_rate, decay_steps=total_steps, alpha=0.0)
        return keras.optimizers.schedules.CosineDecay(
            learning_rate / 10, decay_steps=max(1, total_steps - warmup),
            alpha=0.0, warmup_target=learning_rate, warmup_steps=warmup)
    raise ValueError(f"Unknown schedule {name!r}")  # validated by the caller


def steps_for(num_samples, batch_size):
    """Optimizer steps that cover `num_samples` once (last batch partial)."""
    return int(math.ceil(num_samples / batch_size))
