"""`CNNHyperModel`: a KerasTuner `HyperModel` over `kerascnn.models.build_cnn`."""

import math

import keras
import keras_tuner
import numpy as np

from kerascnn import _validation
from kerascnn.training import _schedules
from kerascnn.tuning import space as space_module

#: Learning-rate schedules `CNNHyperModel(schedule=...)` accepts: the same
#: names, sized the same way, as `kerascnn.training.fit(schedule=...)`.
SCHEDULES = _schedules.SCHEDULES


class TrialInfo(keras.callbacks.Callback):
    """Adds `replicas` and `global_batch_size` to every epoch's logs.

    KerasTuner stores the logs of the best epoch as the trial's metrics, so
    the trials table shows how many replicas each trial really trained on,
    also for trials run by remote workers.
    """

    def __init__(self, global_batch_size):
        super().__init__()
        self.global_batch_size = global_batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["replicas"] = float(
                self.model.distribute_strategy.num_replicas_in_sync)
            logs["global_batch_size"] = float(self.global_batch_size)


class CNNHyperModel(keras_tuner.HyperModel):
    """Searches the lecture's CNN hyperparameters without drawing broken stacks.

    Tunes depth, filter size, stride, padding (and pooling), base filters,
    normalization, dropout and a log-scale learning rate of
    `kerascnn.models.build_cnn`. What it adds over a hand-written KerasTuner
    `build(hp)`: the depth is drawn first and the (filter size, stride,
    padding, pooling) choice only among the combinations whose output volume
    `W2 = (W1 - F + 2P) / S + 1` stays a positive integer for this input
    (`SearchSpace.conv_options`), so a trial never fails on a collapsed
    stack and never trips `max_consecutive_failed_trials`; `fit` adds early
    stopping, class weights and the global batch size (per-replica batch
    times replicas) to every trial; the cyclical learning rate of
    `kerascnn.schedules` is one argument.

    The hyperparameters are `depth`, `conv_depth{d}` (an encoded choice such
    as `"5x5/s2/p1"`, active only when `depth == d`), `filters`,
    `normalization`, `dropout` and `learning_rate`; `decode(hp)` turns them
    into `build_cnn` arguments.

    Args:
        input_shape: `(height, width, channels)` of the images.
        num_classes: Integer >= 2.
        space: A `SearchSpace`, a dict of its arguments or `None` (the
            lecture's defaults). Defaults to `None`.
        batch_size: Integer >= 1, the per-replica batch size; `fit` trains
            with `batch_size * num_replicas_in_sync`. Defaults to `32`.
        normalizer: `None`, or training images whose per-channel mean and
            variance become a `keras.layers.Normalization` inside every model
            (computed once, so trials do not re-adapt). Defaults to `None`.
        augmentation: `None` or a callable returning a fresh Keras layer
            (e.g. `lambda: kerascnn.data.augmentation("digits")`), called in
            every build. Defaults to `None`.
        dense_units: Integer >= 0, hidden units of the classifier. Defaults
            to `128`.
        schedule: `None`, one of `SCHEDULES` (the names
            `kerascnn.training.fit` takes: `"cyclic"`, `"triangular2"` and
            `"exp_range"` are kerascnn cyclical rates between
            `learning_rate / 4` and `learning_rate`; `"step"`,
            `"exponential"` and `"inverse_time"` the Keras decays; each sized
            to `epochs`) or a callable `f(learning_rate) -> schedule`.
            Defaults to `None`.
        epochs: Integer >= 1, the length of a trial, which sizes a named
            `schedule` (the half cycle is `epochs // 4` clipped to [2, 8]
            epochs). Defaults to `10`.
        steps_per_epoch: Integer >= 1, required for a named `schedule`.
            Defaults to `None`.
        class_weight: `None` or a dict class -> weight passed to every
            `fit`. Defaults to `None`.
        patience: Integer >= 1, epochs without improvement of `monitor`
            before a trial stops early. Defaults to `3`.
        batchnorm_momentum: Float in (0, 1), momentum of the moving
            statistics of every `BatchNormalization` layer. Keras' 0.99
            needs several hundred steps before the inference statistics
            match the weights, so short trials (Hyperband's first rounds are
            1 to 3 epochs) are scored on stale statistics and good
            configurations rank low; 0.9 settles in a few dozen steps.
            Defaults to `0.9`.
        monitor: Metric watched by early stopping. Defaults to
            `"val_accuracy"`.
        precision: `None` (the global Keras policy) or a `precision` value
            of `kerascnn.core.distribute.resolve_precision`; every model is
            built under it. Defaults to `None`.
        jit_compile: `"auto"`, `True` or `False`, for `compile`. Defaults
            to `"auto"`.
        steps_per_execution: Integer >= 1, for `compile`. Defaults to `1`.
        name: Model name. Defaults to `"kerascnn_cnn"`.
        tunable: Passed to `keras_tuner.HyperModel`. Defaults to `True`.

    Example:

    >>> hypermodel = CNNHyperModel((28, 28, 1), 10)
    >>> tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy",
    ...                                  max_trials=5)
    """

    def __init__(self, input_shape, num_classes, space=None, batch_size=32,
                 normalizer=None, augmentation=None, dense_units=128,
                 schedule=None, steps_per_epoch=None, epochs=10,
                 class_weight=None,
                 patience=3, monitor="val_accuracy", batchnorm_momentum=0.9,
                 name="kerascnn_cnn", tunable=True, precision=None,
                 jit_compile="auto", steps_per_execution=1):
        from kerascnn.core import distribute

        self.input_shape = space_module.check_input_shape(input_shape)
        self.num_classes = _validation.check_int("num_classes", num_classes, 2)
        self.space = space_module.SearchSpace.from_config(space)
        self.batch_size = _validation.check_positive_int("batch_size",
                                                         batch_size)
        self.normalizer_stats = _normalizer_stats(normalizer, self.input_shape)
        if augmentation is not None:
            _validation.check_callable("augmentation", augmentation)
        self.augmentation = augmentation
        self.dense_units = _validation.check_non_negative_int("dense_units",
                                                              dense_units)
        if schedule is not None and not callable(schedule):
            schedule = _validation.check_option("schedule", schedule,
                                                SCHEDULES)
        self.schedule = schedule
        if steps_per_epoch is not None:
            steps_per_epoch = _validation.check_positive_int(
                "steps_per_epoch", steps_per_epoch)
        if isinstance(schedule, str) and steps_per_epoch is None:
            _validation.fail("steps_per_epoch", "a positive integer when "
                             f"schedule={schedule!r}", steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.epochs = _validation.check_positive_int("epochs", epochs)
        self.class_weight = _check_class_weight(class_weight, self.num_classes)
        self.patience = _validation.check_positive_int("patience", patience)
        self.monitor = _validation.check_string("monitor", monitor)
        self.batchnorm_momentum = _validation.check_float(
            "batchnorm_momentum", batchnorm_momentum, 0.0, 1.0,
            min_open=True, max_open=True)
        self.model_name = _validation.check_string("name", name)
        self.precision = (None if precision is None
                          else distribute.resolve_precision(precision))
        self.jit_compile = distribute.check_jit_compile(jit_compile)
        self.steps_per_execution = distribute.check_steps_per_execution(
            steps_per_execution)
        super().__init__(name=name, tunable=tunable)
        # Raises before any trial when some depth cannot be built at all.
        self.options, self.report = self.space.encoded_options(
            self.input_shape)

    # -- hyperparameters ----------------------------------------------------

    def declare(self, hp):
        """Declares the search space on `hp`; returns the active values."""
        space = self.space
        depth = hp.Choice("depth", list(space.depths))
        conv = None
        for d in space.depths:
            with hp.conditional_scope("depth", [d]):
                value = hp.Choice(f"conv_depth{d}", self.options[d])
                if d == depth:
                    conv = value
        filters = hp.Choice("filters", list(space.filters))
        normalization = hp.Choice("normalization",
                                  list(space.normalizations))
        dropout = hp.Choice("dropout", list(space.dropouts))
        if isinstance(space.learning_rate, tuple):
            low, high = space.learning_rate
            learning_rate = hp.Float("learning_rate", low, high,
                                     sampling="log",
                                     step=space.learning_rate_step)
        else:
            learning_rate = hp.Fixed("learning_rate", space.learning_rate)
        conv = space_module.decode_conv(conv, space.poolings[0])
        return {
            "depth": depth,
            "filter_size": conv.filter_size,
            "stride": conv.stride,
            "padding": conv.padding,
            "pooling": conv.pooling,
            "filters": filters,
            "normalization": normalization,
            "dropout": dropout,
            "learning_rate": learning_rate,
        }

    def decode(self, hp_or_values):
        """`build_cnn` arguments (and the learning rate) from drawn values.

        Accepts a `keras_tuner.HyperParameters` or its `.values` dict.
        """
        values = (hp_or_values if isinstance(hp_or_values, dict)
                  else hp_or_values.values)
        depth = values["depth"]
        conv = space_module.decode_conv(values[f"conv_depth{depth}"],
                                        self.space.poolings[0])
        return {
            "depth": depth,
            "filter_size": conv.filter_size,
            "stride": conv.stride,
            "padding": conv.padding,
            "pooling": conv.pooling,
            "filters": values["filters"],
            "normalization": values["normalization"],
            "dropout": values["dropout"],
            "learning_rate": values["learning_rate"],
        }

    # -- KerasTuner API -----------------------------------------------------

    def build(self, hp):
        """Builds and compiles the `build_cnn` model for the drawn values."""
        from kerascnn.core import distribute
        from kerascnn.core.compile import compile_classifier
        from kerascnn.models import build_cnn
        import tensorflow as tf

        values = self.declare(hp)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        normalizer = None
        if self.normalizer_stats is not None:
            mean, variance = self.normalizer_stats
            normalizer = keras.layers.Normalization(
                axis=-1, mean=mean, variance=variance,
                name="input_normalization")
        with distribute.precision_scope(self.precision):
            model = build_cnn(
                self.input_shape, self.num_classes,
                depth=values["depth"], filters=values["filters"],
                filter_size=values["filter_size"], stride=values["stride"],
                padding=values["padding"], pooling=values["pooling"],
                convs_per_block=self.space.convs_per_block,
                normalization=values["normalization"],
                batch_size=self.batch_size * replicas, num_replicas=replicas,
                dropout=values["dropout"], dense_units=self.dense_units,
                normalizer=normalizer,
                augmentation=(self.augmentation() if self.augmentation
                              else None),
                name=self.model_name, verbose=False,
            )
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = self.batchnorm_momentum
        return compile_classifier(
            model, keras.optimizers.Adam(
                learning_rate=self.learning_rate(values["learning_rate"])),
            jit_compile=self.jit_compile,
            steps_per_execution=self.steps_per_execution)

    def learning_rate(self, learning_rate):
        """The optimizer's learning rate (or CLR schedule) for a drawn value."""
        if self.schedule is None:
            return float(learning_rate)
        if callable(self.schedule):
            return self.schedule(float(learning_rate))
        return _schedules.make_schedule(self.schedule, float(learning_rate),
                                        self.steps_per_epoch, self.epochs)

    def fit(self, hp, model, *args, **kwargs):
        """`model.fit` with early stopping, class weights and global batch.

        The batch size is `batch_size * model.distribute_strategy
        .num_replicas_in_sync` unless `batch_size` is passed; an early
        stopping callback on `monitor` is added unless one is passed.
        """
        replicas = model.distribute_strategy.num_replicas_in_sync
        global_batch = kwargs.pop("batch_size", None) or (
            self.batch_size * replicas)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(type(c).__name__ == "EarlyStopping" for c in callbacks):
            callbacks.insert(0, early_stopping(self.monitor, self.patience))
        callbacks.insert(0, TrialInfo(global_batch))
        if self.class_weight is not None:
            kwargs.setdefault("class_weight", self.class_weight)
        uses_arrays = not args or isinstance(args[0], np.ndarray)
        if uses_arrays:
            kwargs["batch_size"] = global_batch
        return model.fit(*args, callbacks=callbacks, **kwargs)


def early_stopping(monitor, patience):
    """kerascnn's `EarlyStopping` (best weights restored) on `monitor`."""
    from kerascnn import callbacks as kerascnn_callbacks

    mode = "min" if "loss" in monitor else "max"
    return kerascnn_callbacks.EarlyStopping(
        monitor=monitor, patience=patience, mode=mode,
        restore_best_weights=True)


def _normalizer_stats(normalizer, input_shape):
    if normalizer is None:
        return None
    images = _validation.check_images("normalizer", normalizer)
    if images.shape[1:] != tuple(input_shape):
        _validation.fail("normalizer", f"training images of shape "
                         f"(n, {', '.join(map(str, input_shape))})",
                         f"array of shape {images.shape}")
    flat = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return flat.mean(axis=0).tolist(), flat.var(axis=0).tolist()


def _check_class_weight(class_weight, num_classes):
    if class_weight is None:
        return None
    if (not isinstance(class_weight, dict) or not class_weight
            or not all(_validation._is_int(k) and 0 <= k < num_classes
                       for k in class_weight)
            or not all(_validation._is_number(v) and math.isfinite(v)
                       and v >= 0 for v in class_weight.values())):
        _validation.fail("class_weight", "None or a dict from class index "
                         f"(0..{num_classes - 1}) to a weight >= 0",
                         class_weight)
    return {int(k): float(v) for k, v in class_weight.items()}
