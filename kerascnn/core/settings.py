"""Typed settings of a training run, validated when they are made.

`fit`, `tuning.search` and `transfer.fit` used to pass their options around
as string-keyed dicts and check them in three places. Here they are frozen
dataclasses whose `__post_init__` checks every field with the package's
one-line messages ("Argument `x` must be ... Received: x=..."), so a
settings object that exists is a valid one.

The option vocabularies (optimizer names, imbalance handling, precision
policies, schedules, augmentation presets, normalizations) are defined here
once; the CLI (`kerascnn/cli/_common.py`) and the search space import them.
"""

import copy
import dataclasses
import os

from kerascnn import _validation
from kerascnn.core import distribute
from kerascnn.training import defaults

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd", "adagrad", "adamax")
"""Optimizer names `fit(optimizer=...)` and `kerascnn train` accept."""

BALANCE_OPTIONS = ("auto", "class_weight", "effective_number", "oversample",
                   "undersample", "balanced")
"""Label-imbalance handling names (`None` turns it off)."""

SAMPLING_BALANCE = ("oversample", "undersample", "balanced")
"""The `BALANCE_OPTIONS` that resample the training stream."""

CLASS_WEIGHT_METHODS = ("balanced", "effective_number")
"""`kerascnn.data.class_weights` methods (`tuning.search(class_weight=)`)."""

PRECISIONS = distribute.PRECISION_OPTIONS
"""`precision` values: Keras mixed-precision policies, or `"auto"`
(mixed_float16 on GPUs of compute capability >= 7.0, else float32)."""

JIT_COMPILE_OPTIONS = distribute.JIT_COMPILE_OPTIONS
"""`jit_compile` values (Keras' `compile` argument)."""

ON_ERROR_OPTIONS = ("raise", "skip")
"""What to do with an unreadable image file in a folder."""

COLOR_MODES = ("rgb", "grayscale", "rgba")
"""Colour modes of a folder's images (`None` infers them)."""


POOLINGS = ("max2", "max3", "avg2", "strided", None)
"""`build_cnn(pooling=...)` values: a 2x2 or overlapping 3x3 max pool, a 2x2
average pool, `"strided"` (the block's last conv strides 2 in place of a
pooling layer) or `None`."""


SCHEDULES = ("cyclic", "triangular2", "exp_range", "step", "exponential",
             "inverse_time", "one_cycle")
"""Learning-rate schedule names (built by `kerascnn.training._schedules`)."""

CYCLIC_SCHEDULES = ("cyclic", "triangular2", "exp_range")
"""The cyclical ones among `SCHEDULES`."""

TRANSFER_AUGMENT_OPTIONS = ("auto", "digits", "natural", "none")
"""`transfer.fit(augment=...)`: augmented copies of a small target's images
for the head (`"auto"` picks by the images; `"none"` turns it off)."""

TUNERS = ("hyperband", "bayesian", "random", "grid")
"""KerasTuner tuners `kerascnn.tuning.search(tuner=...)` accepts."""


def schedules():
    """Names of the learning-rate schedules (`SCHEDULES`)."""
    return SCHEDULES


def check_augment_dict(value):
    """Checks `augment={"preset": ..., **overrides}` by building it once
    (`kerascnn.data.augmentation`'s checks name the setting and value);
    returns a copy."""
    from kerascnn import data as kdata

    if "seed" in value:
        _validation.fail("augment", "a dict without 'seed' (fit's `seed` "
                         "seeds the augmentation)", value)
    try:
        kdata.augmentation(**value)
    except (TypeError, ValueError) as error:
        _validation.fail("augment", "a dict of kerascnn.data.augmentation "
                         f"arguments (preset and overrides; {error})", value)
    return dict(value)


def augment_presets():
    """Names of the augmentation presets (`kerascnn.data.augmentation`)."""
    from kerascnn import data as kdata

    return tuple(kdata.list_augmentation_presets())


NORMALIZATIONS = ("auto", "batch", "sync_batch", "group", "layer",
                  "instance", "none")
"""`build_cnn(normalization=...)` names (`kerascnn.models.cnn.NORMALIZATIONS`;
a test pins them equal), for the CLI and the search space."""


def normalizations():
    """Normalization names of `kerascnn.models.build_cnn`."""
    return NORMALIZATIONS


def check_dir(name, value):
    """`None` or a folder path (not an existing file); returns str or None."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        _validation.fail(name, "None or a folder path", value)
    path = os.fspath(value)
    if os.path.exists(path) and not os.path.isdir(path):
        _validation.fail(name, "a folder path, not an existing file", path)
    return path


def check_precision(value):
    """Returns `value` if it is one of `PRECISIONS`, else raises."""
    if not isinstance(value, str):
        _validation.fail("precision", "one of " + ", ".join(
            repr(p) for p in PRECISIONS), value)
    return _validation.check_option("precision", value, PRECISIONS)


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """How the data is split and read (`resolve_data`'s arguments).

    Args:
        validation_split: Fraction in [0, 1) for validation when no
            `validation_data` is given. Defaults to `0.1`.
        test_split: Fraction in [0, 1) for the test split. Defaults to
            `0.1`.
        seed: Integer >= 0 of the split. Defaults to `42`.
        image_size: `None` or `(height, width)` a folder's images are
            resized to. Defaults to `None`.
        color_mode: `None` (inferred), `"rgb"`, `"grayscale"` or `"rgba"`.
        on_error: `"raise"` or `"skip"` for unreadable files. Defaults to
            `"raise"`.
        cache: `None`, `"memory"` or a file path for the decoded images.
    """

    validation_split: float = defaults.VALIDATION_SPLIT
    test_split: float = defaults.TEST_SPLIT
    seed: int = defaults.SEED
    image_size: tuple = None
    color_mode: str = None
    on_error: str = "raise"
    cache: object = None

    def __post_init__(self):
        for name in ("validation_split", "test_split"):
            value = getattr(self, name)
            if value != 0:
                _validation.check_fraction(name, value)
        if self.validation_split + self.test_split >= 1:
            raise _validation.ArgumentError(
                "Arguments `validation_split` + `test_split` must be < 1. "
                f"Received: validation_split={self.validation_split}, "
                f"test_split={self.test_split}")
        _validation.check_int("seed", self.seed, 0)
        if self.image_size is not None:
            size = self.image_size
            if _validation._is_int(size):
                size = (size, size)
            if (not isinstance(size, (tuple, list)) or len(size) != 2
                    or not all(_validation._is_int(s) and s >= 1
                               for s in size)):
                _validation.fail("image_size", "None, an integer or "
                                 "(height, width) of integers >= 1",
                                 self.image_size)
            object.__setattr__(self, "image_size", tuple(int(s) for s in size))
        if self.color_mode is not None:
            _validation.check_option("color_mode", self.color_mode,
                                     COLOR_MODES)
        _validation.check_option("on_error", self.on_error, ON_ERROR_OPTIONS)
        if self.cache is not None and not isinstance(
                self.cache, (str, os.PathLike)):
            _validation.fail("cache", 'None, "memory" or a file path',
                             self.cache)

    def resolve_kwargs(self):
        """Keyword arguments for `kerascnn.data.sources.resolve_data`."""
        return {"validation_split": self.validation_split,
                "test_split": self.test_split, "seed": self.seed,
                "image_size": self.image_size, "color_mode": self.color_mode,
                "on_error": self.on_error,
                "cache": (None if self.cache is None
                          else os.fspath(self.cache))}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The options of one training run, checked at construction.

    Args:
        epochs: Integer >= 1, the maximum number of epochs.
        batch_size: Integer >= 1, per replica.
        optimizer: One of `OPTIMIZERS` or a `keras.optimizers.Optimizer`.
        learning_rate: Float > 0 or `"find"` (LR range test).
        schedule: `None`, one of `schedules()` or a Keras
            `LearningRateSchedule`.
        early_stopping: Boolean, stop on `val_loss` and keep the best, or
            `"auto"` (see `resolve_auto`).
        patience: Integer >= 1, early-stopping patience.
        balance: `None` or one of `BALANCE_OPTIONS`.
        augment: `None`, `"auto"` (see `resolve_auto`), one of
            `augment_presets()`, or a dict of `kerascnn.data.augmentation`
            arguments (`{"preset": "digits", "rotation": 0.05}`; `seed`
            comes from `seed`).
        seed: Integer >= 0, seeds sampling, augmentation and weights.
        verbose: 0, 1 or 2.
        precision: One of `PRECISIONS`.
        jit_compile: `"auto"`, `True` or `False`.
        steps_per_execution: Integer >= 1.
    """

    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    optimizer: object = defaults.OPTIMIZER
    learning_rate: object = defaults.LEARNING_RATE
    schedule: object = defaults.SCHEDULE
    early_stopping: object = defaults.EARLY_STOPPING
    patience: int = defaults.EARLY_STOPPING_PATIENCE
    balance: str = "auto"
    augment: str = defaults.AUGMENT
    seed: int = defaults.SEED
    verbose: int = 1
    precision: str = "float32"
    jit_compile: object = "auto"
    steps_per_execution: int = 1

    def __post_init__(self):
        import keras

        _validation.check_int("seed", self.seed, 0)
        _validation.check_positive_int("epochs", self.epochs)
        _validation.check_positive_int("batch_size", self.batch_size)
        _validation.check_int("verbose", self.verbose, 0, 2)
        if not (isinstance(self.early_stopping, str)
                and self.early_stopping == "auto"):
            try:
                _validation.check_bool("early_stopping", self.early_stopping)
            except _validation.ArgumentError:
                _validation.fail("early_stopping", 'True, False or "auto"',
                                 self.early_stopping)
        _validation.check_positive_int("patience", self.patience)
        rate = self.learning_rate
        if isinstance(rate, str):
            _validation.check_option("learning_rate", rate, ("find",))
        else:
            try:
                rate = _validation.check_positive_float("learning_rate", rate)
            except _validation.ArgumentError:
                _validation.fail("learning_rate", 'a number > 0 or "find"',
                                 rate)
            object.__setattr__(self, "learning_rate", float(rate))
        schedule = self.schedule
        if schedule is not None and not isinstance(
                schedule, keras.optimizers.schedules.LearningRateSchedule):
            if not isinstance(schedule, str):
                _validation.fail(
                    "schedule", "None, one of " + ", ".join(
                        repr(s) for s in schedules())
                    + " or a keras LearningRateSchedule", schedule)
            object.__setattr__(self, "schedule", _validation.check_option(
                "schedule", schedule, schedules()))
        if not isinstance(self.optimizer, keras.optimizers.Optimizer):
            if not isinstance(self.optimizer, str):
                _validation.fail("optimizer", "an optimizer name or a "
                                 "keras.optimizers.Optimizer", self.optimizer)
            object.__setattr__(self, "optimizer", _validation.check_option(
                "optimizer", self.optimizer, OPTIMIZERS))
        if self.balance is not None:
            object.__setattr__(self, "balance", _validation.check_option(
                "balance", self.balance, BALANCE_OPTIONS))
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", check_augment_dict(
                self.augment))
        elif self.augment is not None:
            if not isinstance(self.augment, str):
                _validation.fail("augment", "None, \"auto\", a preset name "
                                 "or a dict of kerascnn.data.augmentation "
                                 "arguments", self.augment)
            preset = _validation.check_option(
                "augment", self.augment, ("auto",) + augment_presets())
            object.__setattr__(self, "augment", preset)
        object.__setattr__(self, "precision",
                           check_precision(self.precision))
        object.__setattr__(self, "jit_compile",
                           distribute.check_jit_compile(self.jit_compile))
        distribute.check_steps_per_execution(self.steps_per_execution)

    def resolve_auto(self, data, model=None):
        """These settings with `"auto"` replaced by what it means for `data`.

        `augment="auto"`: the preset `kerascnn.datasets.suited_augmentation`
        names for a built-in dataset, else `None`; always
        `None` for a user's `model`, whose augmentation is its own.
        `early_stopping="auto"`: `False` under the `"one_cycle"` schedule (it
        anneals to 0 over a fixed budget, so the last epoch is the one to
        keep), `True` otherwise, and for a compiled `model`, which keeps its
        own optimizer and so never gets the schedule.
        """
        changes = {}
        if self.augment == "auto":
            from kerascnn import datasets

            preset = None if model is not None else (
                datasets.suited_augmentation(data))
            changes["augment"] = preset
        if self.early_stopping == "auto":
            own_optimizer = model is not None and getattr(model, "compiled",
                                                          False)
            changes["early_stopping"] = (own_optimizer
                                         or self.schedule != "one_cycle")
        if not changes:
            return self
        # The values were checked at construction and the resolved ones
        # are valid: a copy, not `dataclasses.replace`, which would check
        # (and build an augment dict's layers) again.
        resolved = copy.copy(self)
        for name, value in changes.items():
            object.__setattr__(resolved, name, value)
        return resolved

    @property
    def sampling(self):
        """The resampling of `balance`, or `None`."""
        return self.balance if self.balance in SAMPLING_BALANCE else None


@dataclasses.dataclass(frozen=True)
class OutputSettings:
    """Folders a run writes to (each `None` or a folder path).

    Args:
        backup_dir: `keras.callbacks.BackupAndRestore` folder: a killed run
            started again resumes after its last finished epoch.
        tensorboard_dir: `keras.callbacks.TensorBoard` log folder.
        plot_dir: Folder for the loss-curve, confusion-matrix, LR-finder and
            top-losses PNGs.
    """

    backup_dir: str = None
    tensorboard_dir: str = None
    plot_dir: str = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, check_dir(
                field.name, getattr(self, field.name)))

    def folders(self):
        """`{argument name: path}` of the folders that are set."""
        return {f.name: getattr(self, f.name)
                for f in dataclasses.fields(self) if getattr(self, f.name)}
