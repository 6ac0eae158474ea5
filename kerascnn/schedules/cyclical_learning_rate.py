"""Cyclical learning-rate schedules (Smith 2017), replacing tensorflow-addons.

Same class names, signatures and values as `tfa.optimizers.*CyclicalLearningRate`
(tensorflow-addons is end-of-life and does not import on TF 2.21), written with
`keras.ops` only.

What ours adds over tfa: the step is cast to float32 first, so Python ints and
floats and int32/int64 tensors all work in every `scale_mode` (Keras 3
optimizers pass their int64 `iterations`); arguments are validated; `get_config`
holds every constructor argument (tfa dropped `name`), and the base class
serializes a registered `scale_fn` by name. Like tfa, `initial_learning_rate`
may exceed `maximal_learning_rate` (the triangle then points down), and an
unregistered `scale_fn` (a lambda, a local function) is returned by
`get_config` as given, so in-memory `from_config(get_config())` works as in
tfa; saving it in a `.keras` file is then Keras' business (a lambda reloads
only with `safe_mode=False`).
"""

import keras
from keras import ops

from kerascnn import _validation

_SCALE_MODES = ("cycle", "iterations")


def _check_learning_rates(initial_learning_rate, maximal_learning_rate):
    initial = _validation.check_float(
        "initial_learning_rate", initial_learning_rate, min_value=0.0
    )
    maximal = _validation.check_float(
        "maximal_learning_rate", maximal_learning_rate, min_value=0.0
    )
    # initial > maximal is allowed, as in tfa: a decreasing triangle.
    return initial, maximal


@keras.saving.register_keras_serializable(package="kerascnn")
class CyclicalLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that cycles between two bounds (Smith 2017).

    With `step_size` iterations per half cycle::

        cycle = floor(1 + step / (2 * step_size))
        x = |step / step_size - 2 * cycle + 1|
        lr = initial + (maximal - initial) * max(0, 1 - x) * scale_fn(s)

    where `s` is `cycle` when `scale_mode="cycle"` and `step` otherwise.
    Same signature and values as `tfa.optimizers.CyclicalLearningRate`; ours
    also accepts integer tensors in every mode and validates its arguments.
    Use the subclasses for the paper's three policies; pick the bounds with
    `kerascnn.callbacks.find_learning_rate`.

    Args:
        initial_learning_rate: Float >= 0, the value at the start of each
            cycle (usually the lower bound).
        maximal_learning_rate: Float >= 0, the value at the peak of each
            cycle (reached only when `scale_fn` returns 1). It may be below
            `initial_learning_rate`, as in tfa: the triangle then points
            down.
        step_size: Number > 0, iterations per half cycle (Smith suggests 2-10
            times the iterations in an epoch).
        scale_fn: Callable taking a float32 tensor (`cycle` or `step`) and
            returning the amplitude scale; use `keras.ops`. A function
            registered with `keras.saving.register_keras_serializable` (or a
            serializable object) is stored by name in `get_config` and
            reloads anywhere; any other callable is returned as given, like
            tfa (a `.keras` file holding a lambda reloads only with
            `safe_mode=False`; a local function does not reload).
        scale_mode: `"cycle"` or `"iterations"`: what `scale_fn` receives.
            Defaults to `"cycle"`.
        name: String, the name scope of the op. Defaults to
            `"CyclicalLearningRate"`.

    Example:

    ```python
    schedule = kerascnn.schedules.TriangularCyclicalLearningRate(
        initial_learning_rate=1e-4, maximal_learning_rate=1e-2,
        step_size=2000)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule),
                  loss="sparse_categorical_crossentropy")
    ```

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks",
        WACV 2017, https://arxiv.org/abs/1506.01186
    """

    def __init__(
        self,
        initial_learning_rate,
        maximal_learning_rate,
        step_size,
        scale_fn,
        scale_mode="cycle",
        name="CyclicalLearningRate",
    ):
        super().__init__()
        self.initial_learning_rate, self.maximal_learning_rate = (
            _check_learning_rates(initial_learning_rate, maximal_learning_rate)
        )
        self.step_size = _validation.check_positive_float(
            "step_size", step_size
        )
        self.scale_fn = _validation.check_callable("scale_fn", scale_fn)
        self.scale_mode = _validation.check_option(
            "scale_mode", scale_mode, _SCALE_MODES
        )
        self.name = _validation.check_string("name", name)

    def _scale(self, mode_step):
        return self.scale_fn(mode_step)

    def __call__(self, step):
        with keras.name_scope(self.name):
            dtype = "float32"
            initial = ops.convert_to_tensor(self.initial_learning_rate, dtype)
            maximal = ops.convert_to_tensor(self.maximal_learning_rate, dtype)
            step_size = ops.convert_to_tensor(self.step_size, dtype)
            step = ops.cast(step, dtype)
            cycle = ops.floor(1.0 + step / (2.0 * step_size))
            x = ops.abs(step / step_size - 2.0 * cycle + 1.0)
            mode_step = cycle if self.scale_mode == "cycle" else step
            scale = ops.cast(self._scale(mode_step), dtype)
            return initial + (maximal - initial) * ops.maximum(
                ops.convert_to_tensor(0.0, dtype), 1.0 - x
            ) * scale

    def _base_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "step_size": self.step_size,
            "scale_mode": self.scale_mode,
            "name": self.name,
        }

    def get_config(self):
        return {**self._base_config(),
                "scale_fn": _serialize_scale_fn(self.scale_fn)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("scale_fn"), dict):
            config["scale_fn"] = keras.saving.deserialize_keras_object(
                config["scale_fn"]
            )
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerascnn")
class TriangularCyclicalLearningRate(CyclicalLearningRate):
    """Cyclical learning rate with a constant amplitude (`scale_fn = 1`).

    The "triangular" policy of Smith 2017; same signature and values as
    `tfa.optimizers.TriangularCyclicalLearningRate`, plus integer-tensor
    steps, argument validation and a complete, lambda-free config.

    Args:
        initial_learning_rate: Float >= 0, the lower bound.
        maximal_learning_rate: Float >= 0 (below `initial_learning_rate`
            for a decreasing triangle, as in tfa), the upper
            bound, reached every `2 * step_size` iterations.
        step_size: Number > 0, iterations per half cycle.
        scale_mode: `"cycle"` or `"iterations"` (no effect here, kept for
            tfa compatibility). Defaults to `"cycle"`.
        name: String. Defaults to `"TriangularCyclicalLearningRate"`.
    """

    def __init__(
        self,
        initial_learning_rate,
        maximal_learning_rate,
        step_size,
        scale_mode="cycle",
        name="TriangularCyclicalLearningRate",
    ):
        super().__init__(
            initial_learning_rate=initial_learning_rate,
            maximal_learning_rate=maximal_learning_rate,
            step_size=step_size,
            scale_fn=_one,
            scale_mode=scale_mode,
            name=name,
        )

    def get_config(self):
        return self._base_config()

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerascnn")
class Triangular2CyclicalLearningRate(CyclicalLearningRate):
    """Cyclical learning rate whose amplitude halves every cycle.

    The "triangular2" policy of Smith 2017: `scale_fn(c) = 1 / 2 ** (c - 1)`.
    Same signature and values as `tfa.optimizers.Triangular2CyclicalLearningRate`,
    plus integer-tensor steps, argument validation and a complete config.

    Args:
        initial_learning_rate: Float >= 0, the lower bound.
        maximal_learning_rate: Float >= 0 (below `initial_learning_rate`
            for a decreasing triangle, as in tfa), the upper
            bound of the first cycle.
        step_size: Number > 0, iterations per half cycle.
        scale_mode: `"cycle"` (halve per cycle, as in the paper) or
            `"iterations"` (halve per step, as tfa allows). Defaults to
            `"cycle"`.
        name: String. Defaults to `"Triangular2CyclicalLearningRate"`.
    """

    def __init__(
        self,
        initial_learning_rate,
        maximal_learning_rate,
        step_size,
        scale_mode="cycle",
        name="Triangular2CyclicalLearningRate",
    ):
        super().__init__(
            initial_learning_rate=initial_learning_rate,
            maximal_learning_rate=maximal_learning_rate,
            step_size=step_size,
            scale_fn=_halving,
            scale_mode=scale_mode,
            name=name,
        )

    def get_config(self):
        return self._base_config()

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerascnn")
class ExponentialCyclicalLearningRate(CyclicalLearningRate):
    """Cyclical learning rate whose amplitude decays as `gamma ** step`.

    The "exp_range" policy of Smith 2017. Same signature and values as
    `tfa.optimizers.ExponentialCyclicalLearningRate` (default
    `scale_mode="iterations"`), plus integer-tensor steps (tfa failed on
    them), validation of `gamma` and a complete config.

    Args:
        initial_learning_rate: Float >= 0, the lower bound.
        maximal_learning_rate: Float >= 0 (below `initial_learning_rate`
            for a decreasing triangle, as in tfa), the upper
            bound before decay.
        step_size: Number > 0, iterations per half cycle.
        scale_mode: `"iterations"` or `"cycle"`: the exponent of `gamma`.
            Defaults to `"iterations"`.
        gamma: Float in (0, 1], the decay per step (or per cycle). Defaults
            to `1.0` (no decay).
        name: String. Defaults to `"ExponentialCyclicalLearningRate"`.
    """

    def __init__(
        self,
        initial_learning_rate,
        maximal_learning_rate,
        step_size,
        scale_mode="iterations",
        gamma=1.0,
        name="ExponentialCyclicalLearningRate",
    ):
        self.gamma = _validation.check_float(
            "gamma", gamma, 0.0, 1.0, min_open=True
        )
        super().__init__(
            initial_learning_rate=initial_learning_rate,
            maximal_learning_rate=maximal_learning_rate,
            step_size=step_size,
            scale_fn=_one,
            scale_mode=scale_mode,
            name=name,
        )

    def _scale(self, mode_step):
        return ops.power(
            ops.convert_to_tensor(self.gamma, "float32"), mode_step
        )

    def get_config(self):
        return {**self._base_config(), "gamma": self.gamma}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _serialize_scale_fn(scale_fn):
    """A registered function or serializable object by name, else as given."""
    if getattr(scale_fn, "__name__", None) == "<lambda>":
        return scale_fn
    try:
        serialized = keras.saving.serialize_keras_object(scale_fn)
        restored = keras.saving.deserialize_keras_object(serialized)
    except Exception:  # not importable / not registered: tfa's behaviour
        return scale_fn
    if restored is None or (
        not hasattr(scale_fn, "get_config") and restored is not scale_fn
    ):
        return scale_fn
    return serialized


def _one(mode_step):
    return ops.ones_like(mode_step)


def _halving(cycle):
    return 1.0 / ops.power(2.0, cycle - 1.0)
