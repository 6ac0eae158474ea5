"""`fit`: one call that trains a CNN with the lectures' best practices.

Keras gives `model.fit`; scikit-learn gives splits and reports. `fit` wires
the kerascnn pieces around them in the order the lectures teach: check the
data and every argument first, split (stratified), adapt the normalizer on the
training split only, detect and handle label imbalance, optionally find the
learning rate with a range test, schedule it, stop early on the validation
loss with the best weights restored, survive a killed process
(`BackupAndRestore`), then evaluate on the held-out test split, report
per-class metrics and read the loss curves.
"""

import dataclasses
import inspect
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from kerascnn import _validation
from kerascnn.training import _schedules

BALANCE_OPTIONS = (
    "auto",
    "class_weight",
    "effective_number",
    "oversample",
    "undersample",
    "balanced",
)
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd", "adagrad", "adamax")
STRATEGY_OPTIONS = ("auto",)
EARLY_STOPPING_PATIENCE = 5
_SAMPLING_BALANCE = ("oversample", "undersample", "balanced")
# build_cnn arguments that `fit` sets itself.
_FIT_OWNED_MODEL_ARGS = (
    "input_shape", "num_classes", "normalizer", "augmentation", "strategy",
    "batch_size", "num_replicas",
)


@dataclasses.dataclass
class FitResult:
    """What `fit` returns.

    Attributes:
        model: The trained `keras.Model` (best validation-loss weights when
            early stopping ran).
        history: Dict of per-epoch lists (`loss`, `accuracy`, `val_loss`,
            `val_accuracy`, `learning_rate`), including epochs run before a
            resume from `backup_dir`.
        test_metrics: Dict with the test-split `loss` and `accuracy` and the
            `ClassificationReport.to_dict()` entries.
        report: The test split's `ClassificationReport`.
        diagnosis: The loss-curve `Diagnosis`.
        class_names: List of class names, index = label.
        splits: Dict of sample counts, `{"train", "validation", "test"}`.
        normalization: Normalization layers in the model: `"batch"`,
            `"group"`, `"layer"` or `"none"`.
        learning_rate: Float, the (maximal) base learning rate used.
        learning_rate_bounds: `(low, high)` of a cyclical schedule, else
            `None`.
        schedule: Name of the schedule (`None` for a constant rate).
        balance: The imbalance handling applied (`None` when none).
        class_weight: The class-weight dict passed to Keras, or `None`.
        imbalance_ratio: Largest / smallest class count in the train split.
        lr_finder: The `LRFinderResult` when `learning_rate="find"`.
        initial_epoch: Epoch the run started from (> 0 after a resume).
        epochs_run: Epochs trained in this call.
        stopped_early: Whether a callback (early stopping) ended the run.
        stop_reason: `EarlyStopping.stop_reason`, or `None` without it.
        best_epoch: Epoch (0-based) whose weights were kept, or `None`.
        batch_size: Global batch size (per replica x replicas).
        replicas: Number of replicas the strategy trained on.
        plots: Dict name -> path of the PNGs written to `plot_dir`.
        test_data: `(x_test, y_test)`, the held-out split (raw pixels), e.g.
            to check an exported model on the same images.
    """

    model: object
    history: dict
    test_metrics: dict
    report: object
    diagnosis: object
    class_names: list
    splits: dict
    normalization: str
    learning_rate: float
    learning_rate_bounds: tuple = None
    schedule: str = None
    balance: str = None
    class_weight: dict = None
    imbalance_ratio: float = None
    lr_finder: object = None
    initial_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    stop_reason: str = None
    best_epoch: int = None
    batch_size: int = None
    replicas: int = 1
    plots: dict = dataclasses.field(default_factory=dict)
    test_data: tuple = dataclasses.field(default=None, repr=False)

    def summary(self):
        """A few lines: data, settings and test metrics."""
        lines = [
            f"Data: {self.splits['train']} train / "
            f"{self.splits['validation']} validation / "
            f"{self.splits['test']} test images, "
            f"{len(self.class_names)} classes.",
            f"Normalization: {self.normalization}; balance: {self.balance}; "
            f"schedule: {self.schedule}; learning rate: "
            + (f"{self.learning_rate_bounds[0]:.3g}..."
               f"{self.learning_rate_bounds[1]:.3g}"
               if self.learning_rate_bounds else f"{self.learning_rate:.3g}"),
            f"Epochs: {self.initial_epoch + self.epochs_run} "
            f"({'stopped early, ' if self.stopped_early else ''}"
            f"best epoch {self.best_epoch})"
            if self.best_epoch is not None else
            f"Epochs: {self.initial_epoch + self.epochs_run}",
            f"Test: loss {self.test_metrics['loss']:.4f}, accuracy "
            f"{self.test_metrics['accuracy']:.4f}",
        ]
        return "\n".join(lines)


def fit(
    data,
    model=None,
    *,
    validation_split=0.1,
    test_split=0.1,
    seed=42,
    epochs=30,
    batch_size=64,
    optimizer="adam",
    learning_rate=1e-3,
    schedule=None,
    early_stopping=True,
    balance="auto",
    augment=None,
    model_kwargs=None,
    strategy=None,
    backup_dir=None,
    tensorboard_dir=None,
    plot_dir=None,
    verbose=1,
    callbacks=None,
):
    """Trains and evaluates an image classifier with good defaults.

    Over `model.fit`, this adds: every argument and the data checked before
    anything is built (NaN pixels, labels out of range, one class, mismatched
    counts, an input too small for the conv stack, a batch larger than the
    training split, unknown option names); a stratified train / validation /
    test split; a normalizer adapted on the training split only; imbalance
    detection and handling; the learning-rate range test; named schedules
    sized to the run; early stopping with the best weights restored; resume
    after a crash; a per-class report and a reading of the loss curves.

    Args:
        data: `"mnist5k"`, `"digits"`, a folder with one sub-folder per class,
            an `(images, labels)` tuple, or a `kerascnn.data.Splits`
            (used as given; the split arguments are then ignored).
        model: `None` (build one with `kerascnn.models.build_cnn`) or a
            `keras.Model` whose input matches the images and whose output has
            one unit per class. A compiled model keeps its optimizer, loss
            and metrics (a `schedule` or `learning_rate="find"` is then
            refused); `optimizer`, `learning_rate` and `schedule` are used
            to compile an uncompiled one. Defaults to `None`.
        validation_split: Fraction in (0, 1) held out for early stopping.
            Defaults to `0.1`.
        test_split: Fraction in (0, 1) held out for the final evaluation.
            Defaults to `0.1`.
        seed: Integer, seeds the split, sampling, augmentation and weights
            (`keras.utils.set_random_seed`). Defaults to `42`.
        epochs: Integer >= 1, the maximum number of epochs. Defaults to `30`.
        batch_size: Integer >= 1, batch size per replica. Defaults to `64`.
        optimizer: An optimizer name (`"adam"`, `"adamw"`, `"nadam"`,
            `"rmsprop"`, `"sgd"` (Nesterov momentum 0.9), `"adagrad"`,
            `"adamax"`) or a `keras.optimizers.Optimizer`, whose class and
            settings are kept and whose learning rate is set from
            `learning_rate` / `schedule`. Defaults to `"adam"`.
        learning_rate: Float > 0, or `"find"` to run
            `kerascnn.callbacks.find_learning_rate` on the training split
            first and use its suggestion: the suggested `(low, high)` bounds
            for a cyclical schedule, the high bound for a decaying one, their
            geometric mean for a constant rate. Defaults to `1e-3`.
        schedule: `None` (constant), `"cyclic"`, `"triangular2"`,
            `"exp_range"`, `"step"`, `"exponential"`, `"inverse_time"` (see
            `kerascnn.training._schedules` for how each is sized) or a
            `keras.optimizers.schedules.LearningRateSchedule`, used as is.
            Cyclical schedules cycle between `learning_rate / 4` and
            `learning_rate` unless `learning_rate="find"`. Defaults to `None`.
        early_stopping: Boolean; stop when `val_loss` has not improved for
            5 epochs and restore the best weights
            (`kerascnn.callbacks.EarlyStopping`). Defaults to `True`.
        balance: `"auto"` (when the train split's largest/smallest class
            ratio exceeds the `kerascnn.data` threshold, print a note and use
            balanced class weights), `None`, `"class_weight"`,
            `"effective_number"` (class weights), `"oversample"`,
            `"undersample"` or `"balanced"` (resampling in
            `kerascnn.data.make_dataset`). Defaults to `"auto"`.
        augment: `None` or a `kerascnn.data.augmentation` preset name; the
            augmentation runs inside the built model (training only). Only
            with `model=None`. Defaults to `None`.
        model_kwargs: Dict of further `build_cnn` arguments (`depth`,
            `filters`, `dropout`, ...). Only with `model=None`. Defaults to
            `None`.
        strategy: `None` (the current strategy), `"auto"` (MirroredStrategy
            over all GPUs when there are several) or a
            `tf.distribute.Strategy`; the model is built and compiled in its
            scope and the global batch is `batch_size x replicas`. A given
            `model` is cloned into the scope. Defaults to `None`.
        backup_dir: Optional folder for `keras.callbacks.BackupAndRestore`:
            a killed run started again with the same arguments resumes after
            its last finished epoch. Defaults to `None`.
        tensorboard_dir: Optional folder for `keras.callbacks.TensorBoard`.
            Defaults to `None`.
        plot_dir: Optional folder for `loss_curves.png`,
            `confusion_matrix.png` (and `lr_finder.png`). Defaults to `None`.
        verbose: 0 (silent), 1 (progress bar and notes) or 2 (one line per
            epoch). Defaults to `1`.
        callbacks: Optional list of extra `keras.callbacks.Callback`s.

    Returns:
        A `FitResult`.

    Raises:
        ValueError: (`kerascnn.ArgumentError`) for an invalid argument or
            invalid data, before any model is built or epoch run.

    Example:

    >>> result = fit("digits", epochs=2, model_kwargs={"depth": 1})
    >>> result.test_metrics["accuracy"]  # doctest: +SKIP
    """
    plan = _plan(
        data, model, validation_split=validation_split, test_split=test_split,
        seed=seed, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
        learning_rate=learning_rate, schedule=schedule,
        early_stopping=early_stopping, balance=balance, augment=augment,
        model_kwargs=model_kwargs, strategy=strategy, backup_dir=backup_dir,
        tensorboard_dir=tensorboard_dir, plot_dir=plot_dir, verbose=verbose,
        callbacks=callbacks)
    return _run(plan)


# -- Validation: everything is checked here, before a model or file exists ---


def _plan(data, model, **kw):
    """Validates all arguments and the data; returns a dict of settings."""
    p = dict(kw)
    p["seed"] = _validation.check_int("seed", kw["seed"], 0)
    p["epochs"] = _validation.check_positive_int("epochs", kw["epochs"])
    p["batch_size"] = _validation.check_positive_int(
        "batch_size", kw["batch_size"])
    p["verbose"] = _validation.check_int("verbose", kw["verbose"], 0, 2)
    p["early_stopping"] = _validation.check_bool(
        "early_stopping", kw["early_stopping"])
    _check_learning_rate(p)
    _check_schedule(p)
    _check_optimizer(p)
    p["balance"] = (None if kw["balance"] is None else
                    _validation.check_option("balance", kw["balance"],
                                             BALANCE_OPTIONS))
    for name in ("backup_dir", "tensorboard_dir", "plot_dir"):
        p[name] = _check_dir(name, kw[name])
    p["callbacks"] = _check_callbacks(kw["callbacks"])
    p["strategy"] = _resolve_strategy(kw["strategy"])
    p["clone_model"] = p["strategy"] is not tf.distribute.get_strategy()
    p["replicas"] = int(p["strategy"].num_replicas_in_sync)
    p["global_batch_size"] = p["batch_size"] * p["replicas"]

    # Model source.
    if model is not None:
        if not isinstance(model, keras.Model):
            _validation.fail("model", "None or a keras.Model", model)
        if kw["augment"] is not None:
            _validation.fail("augment", "None when `model` is given (build "
                             "the augmentation into your model)",
                             kw["augment"])
        if kw["model_kwargs"] is not None:
            _validation.fail("model_kwargs", "None when `model` is given",
                             kw["model_kwargs"])
        if model.compiled and p["learning_rate"] == "find":
            _validation.fail("learning_rate", "a number when `model` is "
                             "already compiled (its optimizer is kept)",
                             "find")
        if model.compiled and p["schedule"] is not None:
            _validation.fail("schedule", "None when `model` is already "
                             "compiled (its optimizer is kept)",
                             p["schedule"])
    p["model"] = model
    p["model_kwargs"] = _check_model_kwargs(kw["model_kwargs"])
    if kw["augment"] is not None:
        from kerascnn import data as kdata

        p["augment"] = _validation.check_option(
            "augment", kw["augment"],
            tuple(kdata.list_augmentation_presets()))

    # Data.
    p.update(_load_data(data, kw["validation_split"], kw["test_split"],
                        p["seed"]))
    p["global_batch_size"] = _validation.check_batch_size(
        p["global_batch_size"], len(p["y_train"]),
        name="batch_size" if p["replicas"] == 1 else "batch_size * replicas")
    input_shape = tuple(int(d) for d in p["x_train"].shape[1:])
    p["input_shape"] = input_shape
    if model is None:
        from kerascnn import models

        shape_args = {
            k: v for k, v in p["model_kwargs"].items()
            if k in inspect.signature(models.cnn_output_shapes).parameters}
        models.cnn_output_shapes(input_shape, **shape_args)
    else:
        _check_user_model(model, input_shape, p["num_classes"])
    return p


def _check_learning_rate(p):
    value = p["learning_rate"]
    if isinstance(value, str):
        p["learning_rate"] = _validation.check_option(
            "learning_rate", value, ("find",))
    else:
        try:
            p["learning_rate"] = _validation.check_positive_float(
                "learning_rate", value)
        except _validation.ArgumentError:
            _validation.fail("learning_rate", 'a number > 0 or "find"', value)


def _check_schedule(p):
    value = p["schedule"]
    if value is None or isinstance(
            value, keras.optimizers.schedules.LearningRateSchedule):
        return
    if not isinstance(value, str):
        _validation.fail(
            "schedule", "None, one of " + ", ".join(
                repr(s) for s in _schedules.SCHEDULES)
            + " or a keras LearningRateSchedule", value)
    p["schedule"] = _validation.check_option(
        "schedule", value, _schedules.SCHEDULES)


def _check_optimizer(p):
    value = p["optimizer"]
    if isinstance(value, keras.optimizers.Optimizer):
        return
    if not isinstance(value, str):
        _validation.fail("optimizer", "an optimizer name or a "
                         "keras.optimizers.Optimizer", value)
    p["optimizer"] = _validation.check_option("optimizer", value, OPTIMIZERS)


def _check_dir(name, value):
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        _validation.fail(name, "None or a folder path", value)
    path = os.fspath(value)
    if os.path.exists(path) and not os.path.isdir(path):
        _validation.fail(name, "a folder path, not an existing file", path)
    return path


def _check_callbacks(value):
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(c, keras.callbacks.Callback) for c in value):
        _validation.fail("callbacks", "None or a list of "
                         "keras.callbacks.Callback", value)
    return list(value)


def _resolve_strategy(value):
    if value is None:
        return tf.distribute.get_strategy()
    if isinstance(value, tf.distribute.Strategy):
        return value
    if isinstance(value, str):
        _validation.check_option("strategy", value, STRATEGY_OPTIONS)
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    _validation.fail("strategy", 'None, "auto" or a tf.distribute.Strategy',
                     value)


def _check_model_kwargs(value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        _validation.fail("model_kwargs", "None or a dict of build_cnn "
                         "arguments", value)
    from kerascnn import models

    allowed = [name for name in inspect.signature(models.build_cnn).parameters
               if name not in _FIT_OWNED_MODEL_ARGS]
    for key in value:
        if key not in allowed:
            _validation.fail(
                "model_kwargs", "a dict of build_cnn arguments ("
                + ", ".join(allowed) + ")", {key: value[key]})
    return dict(value)


def _is_splits(value):
    return all(hasattr(value, name) for name in (
        "x_train", "y_train", "x_val", "y_val", "x_test", "y_test"))


def _load_data(data, validation_split, test_split, seed):
    """Returns dict with the split arrays, class names and counts."""
    from kerascnn import data as kdata

    class_names = None
    if _is_splits(data):
        parts = {}
        for x_name, y_name in (("x_train", "y_train"), ("x_val", "y_val"),
                               ("x_test", "y_test")):
            x = _validation.check_images(f"data.{x_name}",
                                         getattr(data, x_name))
            y = _validation.check_labels(f"data.{y_name}",
                                         getattr(data, y_name),
                                         num_samples=len(x),
                                         samples_name=f"data.{x_name}")
            parts[x_name], parts[y_name] = x, y
        shapes = {parts[k].shape[1:] for k in ("x_train", "x_val", "x_test")}
        if len(shapes) != 1:
            _validation.fail("data", "a Splits whose images share one shape",
                             f"shapes {sorted(shapes)}")
        num_classes = 1 + max(int(parts[k].max())
                              for k in ("y_train", "y_val", "y_test"))
        missing = sorted(set(range(num_classes)) - set(parts["y_train"]))
        if missing:
            _validation.fail("data", "a Splits whose training split holds "
                             "every class", f"classes {missing} missing")
    else:
        if isinstance(data, (str, os.PathLike)):
            images, labels, class_names = _load_named(data)
        elif isinstance(data, (tuple, list)) and len(data) == 2:
            images, labels = data
        else:
            _validation.fail(
                "data", '"mnist5k", "digits", a folder path, an (images, '
                "labels) tuple or a kerascnn.data.Splits", data)
        images = _validation.check_images("images", images)
        labels = _validation.check_labels("labels", labels,
                                          num_samples=len(images),
                                          samples_name="images")
        num_classes = int(labels.max()) + 1
        missing = sorted(set(range(num_classes)) - set(labels.tolist()))
        if missing:
            _validation.fail("labels", "class indices 0 .. n-1 with every "
                             "class present", f"classes {missing} missing")
        _validation.check_fraction("validation_split", validation_split)
        _validation.check_fraction("test_split", test_split)
        if validation_split + test_split >= 1:
            raise _validation.ArgumentError(
                "Arguments `validation_split` + `test_split` must be < 1. "
                f"Received: validation_split={validation_split}, "
                f"test_split={test_split}")
        split = kdata.split_dataset(images, labels,
                                    validation_split=validation_split,
                                    test_split=test_split, seed=seed)
        parts = {name: getattr(split, name) for name in (
            "x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        _validation.fail("data", f"labels matching its {len(class_names)} "
                         "class names", f"{num_classes} classes")
    parts["x_train"] = np.asarray(parts["x_train"])
    parts.update(num_classes=num_classes, class_names=class_names,
                 splits={"train": len(parts["y_train"]),
                         "validation": len(parts["y_val"]),
                         "test": len(parts["y_test"])})
    return parts


def _load_named(source):
    from kerascnn import datasets

    source = os.fspath(source)
    if source.lower() not in datasets.DATASETS and not os.path.isdir(source):
        _validation.fail(
            "data", "one of " + ", ".join(repr(d) for d in datasets.DATASETS)
            + " or an existing folder", source)
    loaded = datasets.load(source.lower() if source.lower()
                           in datasets.DATASETS else source)
    images, labels, class_names = loaded
    return images, labels, class_names


def _check_user_model(model, input_shape, num_classes):
    try:
        model_input = tuple(model.input_shape[1:])
        model_output = model.output_shape
    except (AttributeError, ValueError):
        _validation.fail("model", "a built keras.Model (with a known input "
                         "shape)", model)
    if isinstance(model_output, list) or isinstance(
            model.input_shape, list):
        _validation.fail("model", "a model with one input and one output",
                         model)
    if any(m is not None and m != d for m, d in zip(model_input, input_shape)
           ) or len(model_input) != len(input_shape):
        raise _validation.ArgumentError(
            "Argument `model` must take the images' shape "
            f"{input_shape}. Received: model with input shape "
            f"{model_input}")
    if model_output[-1] != num_classes:
        raise _validation.ArgumentError(
            f"Argument `model` must output {num_classes} class scores. "
            f"Received: model with output shape {tuple(model_output)}")


# -- Training -----------------------------------------------------------------


def _run(p):
    from kerascnn import callbacks as kcallbacks
    from kerascnn import data as kdata

    verbose = p["verbose"]
    say = print if verbose else (lambda *a, **k: None)
    keras.utils.set_random_seed(p["seed"])
    strategy = p["strategy"]
    with strategy.scope():
        # build_cnn checks its own arguments before it builds any layer.
        model = _make_model(p)
    for name in ("backup_dir", "tensorboard_dir", "plot_dir"):
        if p[name]:
            os.makedirs(p[name], exist_ok=True)

    x_train, y_train = p["x_train"], p["y_train"]
    ratio = float(kdata.imbalance_ratio(y_train))
    balance = p["balance"]
    if balance == "auto":
        # The data module's check and note (its threshold, its advice).
        if kdata.detect_imbalance(y_train, verbose=bool(verbose)):
            say("fit(balance='auto'): training with balanced class weights "
                "(pass balance='oversample' or 'balanced' to resample "
                "instead, or balance=None to turn this off).")
            balance = "class_weight"
        else:
            balance = None
    class_weight = None
    if balance in ("class_weight", "effective_number"):
        method = "balanced" if balance == "class_weight" else balance
        class_weight = {int(k): float(v) for k, v in
                        kdata.class_weights(y_train, method=method).items()}
    sampling = balance if balance in _SAMPLING_BALANCE else None

    gbs = p["global_batch_size"]
    train_ds = kdata.make_dataset(x_train, y_train, batch_size=gbs,
                                  shuffle=True, sampling=sampling,
                                  seed=p["seed"])
    val_ds = kdata.make_dataset(p["x_val"], p["y_val"], shuffle=False,
                                batch_size=min(gbs, len(p["y_val"])))
    test_ds = kdata.make_dataset(p["x_test"], p["y_test"], shuffle=False,
                                 batch_size=min(gbs, len(p["y_test"])))
    steps_per_epoch = _schedules.steps_for(
        kdata.samples_per_epoch(y_train, sampling), gbs)

    with strategy.scope():
        lr_finder = None
        learning_rate = p["learning_rate"]
        bounds = None
        if not model.compiled:
            if learning_rate == "find":
                lr_finder = _find_learning_rate(model, p, train_ds)
                bounds = tuple(float(b) for b in lr_finder.suggested)
                if p["schedule"] in _schedules.CYCLIC_SCHEDULES:
                    learning_rate = bounds[1]
                elif p["schedule"] is None:
                    learning_rate = math.sqrt(bounds[0] * bounds[1])
                    bounds = None
                else:
                    learning_rate = bounds[1]
                    bounds = None
                say(f"Learning-rate range test suggests "
                    f"{lr_finder.suggested[0]:.3g}..."
                    f"{lr_finder.suggested[1]:.3g}; using "
                    + (f"{bounds[0]:.3g}...{bounds[1]:.3g}" if bounds
                       else f"{learning_rate:.3g}") + ".")
            schedule = p["schedule"]
            if isinstance(schedule, str):
                if schedule in _schedules.CYCLIC_SCHEDULES and bounds is None:
                    bounds = _schedules.cyclic_bounds(learning_rate)
                rate = _schedules.make_schedule(
                    schedule, learning_rate, steps_per_epoch, p["epochs"],
                    bounds=bounds)
            elif schedule is not None:
                rate = schedule
                learning_rate = float(keras.ops.convert_to_numpy(schedule(0)))
            else:
                rate = learning_rate
            model.compile(optimizer=_make_optimizer(p["optimizer"], rate),
                          loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
        else:
            learning_rate = _current_learning_rate(model)

    schedule_name = p["schedule"] if isinstance(p["schedule"], str) or (
        p["schedule"] is None) else type(p["schedule"]).__name__

    callback_list = []
    journal = None
    if p["backup_dir"]:
        journal = _HistoryJournal(os.path.join(p["backup_dir"],
                                               "history.json"))
        callback_list += [journal, keras.callbacks.BackupAndRestore(
            os.path.join(p["backup_dir"], "state"))]
    stopper = None
    if p["early_stopping"]:
        stopper = kcallbacks.EarlyStopping(
            monitor="val_loss", patience=EARLY_STOPPING_PATIENCE,
            restore_best_weights=True, verbose=0)
        callback_list.append(stopper)
    diagnoser = kcallbacks.LossCurveDiagnosis(verbose=0,
                                              num_classes=p["num_classes"])
    callback_list.append(diagnoser)
    if p["tensorboard_dir"]:
        callback_list.append(keras.callbacks.TensorBoard(p["tensorboard_dir"]))
    callback_list += p["callbacks"]

    keras_history = model.fit(
        train_ds, validation_data=val_ds, epochs=p["epochs"],
        class_weight=class_weight, callbacks=callback_list, verbose=verbose,
        shuffle=False)  # make_dataset reshuffles every epoch itself
    epochs_run = len(keras_history.epoch)
    initial_epoch = (keras_history.epoch[0] if keras_history.epoch
                     else p["epochs"])
    history = {k: [float(v) for v in vals]
               for k, vals in keras_history.history.items()}
    if journal is not None:
        history = journal.merged(history, initial_epoch)
        journal.remove()

    diagnosis = getattr(diagnoser, "diagnosis", None)
    if diagnosis is None or initial_epoch > 0:
        diagnosis = kcallbacks.diagnose_history(history, p["num_classes"])
    say(diagnosis.summary())

    evaluation = model.evaluate(test_ds, return_dict=True, verbose=0)
    y_prob = model.predict(test_ds, verbose=0)
    report = kdata.classification_report(p["y_test"], y_prob,
                                         class_names=p["class_names"])
    accuracy = float(np.mean(np.argmax(y_prob, axis=-1) == p["y_test"]))
    test_metrics = {"loss": float(evaluation.get("loss", np.nan)),
                    "accuracy": accuracy}
    for key, value in report.to_dict().items():
        test_metrics.setdefault(key, value)
    say(f"Test accuracy: {accuracy:.4f} ({len(p['y_test'])} images); test "
        f"loss: {test_metrics['loss']:.4f}")

    plots = {}
    if p["plot_dir"]:
        plots["loss_curves"] = os.path.join(p["plot_dir"], "loss_curves.png")
        diagnosis.plot(plots["loss_curves"])
        plots["confusion_matrix"] = os.path.join(p["plot_dir"],
                                                 "confusion_matrix.png")
        report.plot_confusion_matrix(plots["confusion_matrix"])
        if lr_finder is not None:
            plots["lr_finder"] = os.path.join(p["plot_dir"], "lr_finder.png")
            lr_finder.plot(plots["lr_finder"])
        say("Plots: " + ", ".join(plots.values()))

    stopped_early = bool(getattr(model, "stop_training", False))
    stop_reason = getattr(stopper, "stop_reason", None)
    best_epoch = getattr(stopper, "best_epoch", None) if stopper else None
    return FitResult(
        model=model, history=history, test_metrics=test_metrics,
        report=report, diagnosis=diagnosis, class_names=p["class_names"],
        splits=p["splits"], normalization=_normalization_of(model),
        learning_rate=float(learning_rate), learning_rate_bounds=(
            tuple(float(b) for b in bounds) if bounds else None),
        schedule=schedule_name, balance=balance, class_weight=class_weight,
        imbalance_ratio=ratio, lr_finder=lr_finder,
        initial_epoch=int(initial_epoch), epochs_run=epochs_run,
        stopped_early=stopped_early, stop_reason=stop_reason,
        best_epoch=best_epoch,
        batch_size=gbs, replicas=p["replicas"], plots=plots,
        test_data=(p["x_test"], p["y_test"]))


def _make_model(p):
    if p["model"] is None:
        from kerascnn import data as kdata
        from kerascnn import models

        kwargs = dict(p["model_kwargs"])
        kwargs.setdefault("verbose", bool(p["verbose"]))
        normalizer = kdata.normalization_layer(p["x_train"])
        augmentation = (kdata.augmentation(p["augment"], seed=p["seed"])
                        if p["augment"] is not None else None)
        return models.build_cnn(
            p["input_shape"], p["num_classes"], normalizer=normalizer,
            augmentation=augmentation, batch_size=p["global_batch_size"],
            num_replicas=p["replicas"], **kwargs)
    model = p["model"]
    if not p["clone_model"]:
        return model
    # Variables must be created in the strategy's scope: copy the model.
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    if model.compiled:
        clone.compile(optimizer=model.optimizer.__class__.from_config(
            model.optimizer.get_config()), loss=model.loss,
            metrics=["accuracy"])
    return clone


def _make_optimizer(optimizer, rate):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        config["learning_rate"] = rate
        return optimizer.__class__.from_config(config)
    if optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9,
                                    nesterov=True)
    return keras.optimizers.get({"class_name": optimizer,
                                 "config": {"learning_rate": rate}})


def _current_learning_rate(model):
    rate = model.optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(rate))


def _find_learning_rate(model, p, train_ds):
    from kerascnn import callbacks as kcallbacks

    model.compile(optimizer=_make_optimizer(p["optimizer"], 1e-3),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    result = kcallbacks.find_learning_rate(model, train_ds, seed=p["seed"],
                                           verbose=0)
    if result.suggested is None:
        raise _validation.ArgumentError(
            'Argument `learning_rate` must be a number when the range test '
            "finds no learning rate at which the loss falls "
            f'({result.stop_reason}). Received: learning_rate="find"')
    return result


def _normalization_of(model):
    config = getattr(model, "kerascnn_config", None)
    if isinstance(config, dict) and "normalization_resolved" in config:
        return config["normalization_resolved"]
    names = set()
    for layer in _all_layers(model):
        cls = type(layer).__name__
        if cls == "BatchNormalization":
            names.add("batch")
        elif cls == "GroupNormalization":
            names.add("group")
        elif cls == "LayerNormalization":
            names.add("layer")
    return "+".join(sorted(names)) if names else "none"


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


class _HistoryJournal(keras.callbacks.Callback):
    """Keeps the per-epoch logs on disk so that a resumed run reports all."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def _read(self):
        if not os.path.exists(self.path):
            return {}
        with open(self.path, encoding="utf-8") as handle:
            return json.load(handle)

    def on_epoch_end(self, epoch, logs=None):
        entries = self._read()
        entries[str(epoch)] = {k: float(v) for k, v in (logs or {}).items()}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(entries, handle)
        os.replace(tmp, self.path)

    def merged(self, history, initial_epoch):
        """Prepends the journal's epochs before `initial_epoch`."""
        entries = self._read()
        earlier = [entries[str(e)] for e in range(initial_epoch)
                   if str(e) in entries]
        keys = list(dict.fromkeys(
            [k for e in earlier for k in e] + list(history)))
        return {key: [e.get(key, float("nan")) for e in earlier]
                + list(history.get(key, [])) for key in keys}

    def remove(self):
        if os.path.exists(self.path):
            os.remove(self.path)
