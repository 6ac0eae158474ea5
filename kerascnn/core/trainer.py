"""The training run every workflow shares, step by step.

A workflow (`kerascnn.training.fit`, `kerascnn.transfer.fit`,
`kerascnn.tuning.search`) resolves its data with `kerascnn.core.data`,
decides its model and settings, and calls these steps:

1. `setup_strategy`: the `tf.distribute` strategy (`"auto"`: multi-worker
   under `TF_CONFIG`, MirroredStrategy over several GPUs), the global batch
   (per replica x replicas) checked against the training split, the start
   line ("MultiWorkerMirroredStrategy: 2 workers, 2 replicas").
2. `check_outputs`: every output folder writable, before any training.
3. `plan_balance`: the imbalance rule on the training split's class counts
   (from the file list for a folder: nothing is decoded).
4. `normalizer`: a `Normalization` layer adapted on a bounded sample of the
   training split.
5. `compile_model`: optimizer, learning-rate range test, named schedule,
   precision, XLA and steps per execution.
6. `train`: `model.fit` on the streamed pipelines with the standard
   callbacks (early stopping, backup/resume with a fingerprint check,
   TensorBoard, loss-curve diagnosis) and the history of a resumed run.
7. `evaluate`: test loss, accuracy and the per-class report computed batch
   by batch from the test stream.
8. `divergence` and `write_plots` (chief only).
"""

import contextlib
import dataclasses
import math
import os

import keras
import numpy as np

from kerascnn import _validation
from kerascnn.core import callbacks as core_callbacks
from kerascnn.core import data as core_data
from kerascnn.core import distribute
from kerascnn.core.compile import compile_classifier

#: A run whose last training loss or test loss exceeds this many times the
#: chance-level loss `ln(num_classes)` counts as diverged (exploded).
DIVERGENCE_FACTOR = 10.0


def say_for(verbose):
    """`print` when `verbose`, else a function that prints nothing."""
    return print if verbose else (lambda *args, **kwargs: None)


# -- 1. strategy --------------------------------------------------------------


@dataclasses.dataclass
class StrategyPlan:
    """The strategy of a run and its batch sizes."""

    strategy: object
    replicas: int
    global_batch_size: int
    description: str


def setup_strategy(value, batch_size, num_train=None, verbose=0):
    """Resolves `strategy` and checks the global batch; prints the start line.

    Args:
        value: `None`, `"auto"` or a `tf.distribute.Strategy`
            (`kerascnn.core.distribute.resolve_strategy`).
        batch_size: Per-replica batch size.
        num_train: Training samples, or `None` for a stream of unknown
            length (the batch is then not checked).
        verbose: Print the strategy line when > 0 and the strategy is not
            the default one.
    """
    strategy = distribute.resolve_strategy(value)
    replicas = distribute.num_replicas(strategy)
    global_batch = batch_size * replicas
    if num_train is not None:
        _validation.check_batch_size(
            global_batch, num_train,
            name="batch_size" if replicas == 1 else "batch_size * replicas")
    description = distribute.describe_strategy(strategy, batch_size)
    if verbose and not description.startswith("default strategy"):
        print(description)
    return StrategyPlan(strategy, replicas, global_batch, description)


# -- 2. outputs ---------------------------------------------------------------


def check_writable(path, name):
    """Checks before training that folder `path` can be created and written."""
    try:
        from kerascnn.export.safety import check_writable as _check
    except ImportError:  # pragma: no cover - the export layer provides it
        _check = None
    if _check is not None:
        return _check(path, name=name)
    probe = os.path.abspath(os.fspath(path))
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        _validation.fail(name, "a folder kerascnn can create and write",
                         os.fspath(path))
    return os.fspath(path)


def check_outputs(folders):
    """`check_writable` on every `{argument name: folder}` given."""
    for name, path in folders.items():
        if path is not None:
            check_writable(path, name)


# -- 3. imbalance -------------------------------------------------------------


@dataclasses.dataclass
class BalancePlan:
    """How the training split's label imbalance is handled."""

    balance: str
    class_weight: dict
    sampling: str
    ratio: float
    counts: np.ndarray


def _labels_from_counts(counts):
    return np.repeat(np.arange(len(counts)), counts)


def plan_balance(source, num_classes, balance, verbose=0):
    """Applies a `balance` option to the training split's class counts.

    `"auto"`: when `kerascnn.data.detect_imbalance` finds the largest /
    smallest class ratio above its threshold, print a note and use balanced
    class weights. The counts come from `source.class_counts` (the file list
    for a folder, one pass over the labels for a stream).
    """
    from kerascnn import data as kdata

    counts = np.asarray(source.class_counts(num_classes), np.int64)
    labels = _labels_from_counts(counts)
    ratio = float(kdata.imbalance_ratio(labels, num_classes=num_classes))
    if balance == "auto":
        if kdata.detect_imbalance(labels, verbose=bool(verbose),
                                  num_classes=num_classes):
            say_for(verbose)(
                "fit(balance='auto'): training with balanced class weights "
                "(pass balance='oversample' or 'balanced' to resample "
                "instead, or balance=None to turn this off).")
            balance = "class_weight"
        else:
            balance = None
    class_weight = None
    if balance in ("class_weight", "effective_number", "balanced_weights"):
        method = "balanced" if balance == "class_weight" else balance
        class_weight = {int(k): float(v) for k, v in kdata.class_weights(
            labels, method=method, num_classes=num_classes).items()}
    from kerascnn.core.settings import SAMPLING_BALANCE

    sampling = balance if balance in SAMPLING_BALANCE else None
    return BalancePlan(balance, class_weight, sampling, ratio, counts)


def class_weight_for(method, source, num_classes):
    """Class weights by `method` (`kerascnn.data.class_weights`), counts."""
    from kerascnn import data as kdata

    counts = np.asarray(source.class_counts(num_classes), np.int64)
    return {int(k): float(v) for k, v in kdata.class_weights(
        _labels_from_counts(counts), method=method,
        num_classes=num_classes).items()}


# -- 4. normalizer ------------------------------------------------------------


#: Images of the training split the normalizer statistics are computed on.
NORMALIZER_SAMPLE = 2048


def normalizer_sample(source, seed=0):
    """A bounded, seeded sample of the training images (float32)."""
    return source.sample(max_images=NORMALIZER_SAMPLE, seed=seed)


def normalizer(source, seed=0):
    """`keras.layers.Normalization` adapted on `normalizer_sample(source)`."""
    from kerascnn import data as kdata

    return kdata.normalization_layer(normalizer_sample(source, seed))


# -- 5. compile ---------------------------------------------------------------


def make_optimizer(optimizer, rate):
    """A fresh optimizer: a name (`"sgd"`: Nesterov momentum 0.9) or a copy
    of a `keras.optimizers.Optimizer` with its learning rate set to `rate`."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        config["learning_rate"] = rate
        return optimizer.__class__.from_config(config)
    if optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9,
                                    nesterov=True)
    return keras.optimizers.get({"class_name": optimizer,
                                 "config": {"learning_rate": rate}})


@dataclasses.dataclass
class CompilePlan:
    """The learning rate a run compiled with."""

    learning_rate: float
    bounds: tuple = None
    lr_finder: object = None
    schedule_name: str = None


def _find_learning_rate(model, settings, train_ds):
    from kerascnn import callbacks as kcallbacks

    compile_classifier(model, make_optimizer(settings.optimizer, 1e-3))
    result = kcallbacks.find_learning_rate(model, train_ds,
                                           seed=settings.seed, verbose=0)
    if result.suggested is None:
        raise _validation.ArgumentError(
            'Argument `learning_rate` must be a number when the range test '
            "finds no learning rate at which the loss falls "
            f'({result.stop_reason}). Received: learning_rate="find"')
    return result


def current_learning_rate(model):
    """The learning rate of a compiled model's optimizer (at step 0)."""
    rate = model.optimizer.learning_rate
    if callable(rate) and not hasattr(rate, "numpy"):
        rate = rate(0)
    return float(keras.ops.convert_to_numpy(rate))


def compile_model(model, settings, steps_per_epoch, train_ds):
    """Compiles an uncompiled `model` from `settings` (range test, schedule).

    A compiled model keeps its optimizer, loss and metrics; only
    `jit_compile` and `steps_per_execution` are applied to it.
    """
    from kerascnn.training import _schedules

    say = say_for(settings.verbose)
    schedule = settings.schedule
    schedule_name = schedule if isinstance(schedule, str) or (
        schedule is None) else type(schedule).__name__
    if model.compiled:
        schedule_name = None  # the model's own optimizer is kept
        if settings.jit_compile != "auto":
            model.jit_compile = settings.jit_compile
        if settings.steps_per_execution != 1:
            model.steps_per_execution = settings.steps_per_execution
        return CompilePlan(current_learning_rate(model),
                           schedule_name=schedule_name)
    learning_rate, bounds, lr_finder = settings.learning_rate, None, None
    if learning_rate == "find":
        lr_finder = _find_learning_rate(model, settings, train_ds)
        bounds = tuple(float(b) for b in lr_finder.suggested)
        if schedule in _schedules.CYCLIC_SCHEDULES:
            learning_rate = bounds[1]
        elif schedule is None:
            learning_rate = math.sqrt(bounds[0] * bounds[1])
            bounds = None
        else:
            learning_rate = bounds[1]
            bounds = None
        say(f"Learning-rate range test suggests {lr_finder.suggested[0]:.3g}"
            f"...{lr_finder.suggested[1]:.3g}; using "
            + (f"{bounds[0]:.3g}...{bounds[1]:.3g}" if bounds
               else f"{learning_rate:.3g}") + ".")
    if isinstance(schedule, str):
        if schedule in _schedules.CYCLIC_SCHEDULES and bounds is None:
            bounds = _schedules.cyclic_bounds(learning_rate)
        rate = _schedules.make_schedule(schedule, learning_rate,
                                        steps_per_epoch, settings.epochs,
                                        bounds=bounds)
    elif schedule is not None:
        rate = schedule
        learning_rate = float(keras.ops.convert_to_numpy(schedule(0)))
    else:
        rate = learning_rate
    compile_classifier(model, make_optimizer(settings.optimizer, rate),
                       jit_compile=settings.jit_compile,
                       steps_per_execution=settings.steps_per_execution)
    return CompilePlan(float(learning_rate),
                       tuple(float(b) for b in bounds) if bounds else None,
                       lr_finder, schedule_name)


# -- 6. train -----------------------------------------------------------------


@dataclasses.dataclass
class TrainOutcome:
    """What `train` observed."""

    history: dict
    initial_epoch: int
    epochs_run: int
    diagnosis: object
    stopped_early: bool
    stop_reason: str
    best_epoch: int


def train(model, pipes, settings, outputs, *, num_classes, class_weight=None,
          fingerprint="", extra_callbacks=(), validation_freq=1):
    """`model.fit` on `pipes` with the standard callbacks.

    Under a multi-worker strategy only the chief writes the history journal
    and the backup fingerprint; a non-chief worker's TensorBoard logs go to
    a temporary folder removed afterwards. `BackupAndRestore` runs on every
    worker in the shared `backup_dir`, as Keras does.
    """
    from kerascnn import callbacks as kcallbacks

    chief = distribute.is_chief()
    callback_list, journal = [], None
    with contextlib.ExitStack() as stack:
        if outputs.backup_dir:
            core_callbacks.check_backup(outputs.backup_dir, model,
                                        fingerprint, write=chief)
            journal, restore = core_callbacks.backup(outputs.backup_dir,
                                                     write=chief)
            callback_list += [journal, restore]
        stopper = None
        if settings.early_stopping:
            stopper = core_callbacks.early_stopping(settings.patience)
            callback_list.append(stopper)
        diagnoser = core_callbacks.diagnosis(num_classes)
        callback_list.append(diagnoser)
        if outputs.tensorboard_dir:
            log_dir = stack.enter_context(
                distribute.worker_output_dir(outputs.tensorboard_dir))
            callback_list.append(core_callbacks.tensorboard(log_dir))
        callback_list += list(extra_callbacks)
        keras_history = model.fit(
            pipes.train, validation_data=pipes.validation,
            epochs=settings.epochs, class_weight=class_weight,
            callbacks=callback_list, verbose=settings.verbose,
            validation_freq=validation_freq, shuffle=False)
    epochs_run = len(keras_history.epoch)
    initial_epoch = (keras_history.epoch[0] if keras_history.epoch
                     else settings.epochs)
    history = {k: [float(v) for v in vals]
               for k, vals in keras_history.history.items()}
    if journal is not None:
        history = journal.merged(history, initial_epoch)
        journal.remove()
    diagnosis = getattr(diagnoser, "diagnosis", None)
    if diagnosis is None or initial_epoch > 0:
        diagnosis = kcallbacks.diagnose_history(history, num_classes)
    return TrainOutcome(
        history=history, initial_epoch=int(initial_epoch),
        epochs_run=epochs_run, diagnosis=diagnosis,
        stopped_early=bool(getattr(model, "stop_training", False)),
        stop_reason=getattr(stopper, "stop_reason", None),
        best_epoch=getattr(stopper, "best_epoch", None) if stopper else None)


# -- 7. evaluate --------------------------------------------------------------


@dataclasses.dataclass
class Evaluation:
    """Test loss, accuracy and the per-class report of one split."""

    metrics: dict
    report: object
    y_true: np.ndarray = dataclasses.field(repr=False)
    y_prob: np.ndarray = dataclasses.field(repr=False)


def evaluate(model, source, batch_size, class_names):
    """Evaluates `model` on `source`, streamed batch by batch.

    The loss is Keras' sparse categorical cross-entropy of the predicted
    probabilities; accuracy and `kerascnn.data.classification_report`
    come from the same single pass.
    """
    from kerascnn import data as kdata

    y_true, y_prob = core_data.predict_source(model, source, batch_size)
    y_prob = y_prob.astype("float32")
    broken = ~np.all(np.isfinite(y_prob), axis=-1)
    loss = float("nan")
    if broken.any():
        # A diverged model: its non-finite rows count as uniform guesses so
        # that the report can still be made; the loss stays NaN.
        y_prob = np.where(broken[:, None], 1.0 / y_prob.shape[-1], y_prob)
    else:
        loss = core_data.sparse_cross_entropy(y_true, y_prob)
    report = kdata.classification_report(y_true, y_prob,
                                         class_names=class_names)
    metrics = {"loss": loss,
               "accuracy": float(np.mean(np.argmax(y_prob, -1) == y_true))}
    for key, value in report.to_dict().items():
        metrics.setdefault(key, value)
    return Evaluation(metrics, report, y_true, y_prob)


# -- 8. divergence and plots --------------------------------------------------


def divergence(history, num_classes, test_loss=None):
    """Why a run counts as diverged, or `None` when it did not.

    Diverged: a non-finite training or validation loss in any epoch, or a
    last training loss (or test loss) above `DIVERGENCE_FACTOR` times the
    chance-level loss `ln(num_classes)`.
    """
    for key in ("loss", "val_loss"):
        values = history.get(key, [])
        bad = [e for e, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            return f"{key} became non-finite at epoch {bad[0] + 1}"
    limit = DIVERGENCE_FACTOR * math.log(max(2, num_classes))
    losses = history.get("loss", [])
    if losses and losses[-1] > limit:
        return (f"training loss {losses[-1]:.3g} at the last epoch exceeds "
                f"{DIVERGENCE_FACTOR:g} x ln({num_classes}) = {limit:.3g}")
    if test_loss is not None and not math.isfinite(test_loss):
        return "the test loss is non-finite"
    if test_loss is not None and test_loss > limit:
        return (f"test loss {test_loss:.3g} exceeds {DIVERGENCE_FACTOR:g} x "
                f"ln({num_classes}) = {limit:.3g}")
    return None


#: Images in the top-losses figure.
TOP_LOSSES = 16


def _images_at(source, indices, batch_size):
    """The images of `source` at sorted `indices` (one pass, in order)."""
    wanted = {int(i): n for n, i in enumerate(indices)}
    found = [None] * len(indices)
    start = 0
    for x, _ in source.dataset(batch_size, shuffle=False):
        x = np.asarray(x)
        for offset in range(len(x)):
            if start + offset in wanted:
                found[wanted[start + offset]] = x[offset]
        start += len(x)
        if all(f is not None for f in found):
            break
    return np.stack(found)


def write_plots(plot_dir, *, diagnosis, report, lr_finder=None,
                evaluation=None, source=None, class_names=None,
                batch_size=64):
    """Writes the run's PNGs into `plot_dir` (chief only); returns paths."""
    if plot_dir is None or not distribute.is_chief():
        return {}
    os.makedirs(plot_dir, exist_ok=True)
    plots = {"loss_curves": os.path.join(plot_dir, "loss_curves.png"),
             "confusion_matrix": os.path.join(plot_dir,
                                              "confusion_matrix.png")}
    diagnosis.plot(plots["loss_curves"])
    report.plot_confusion_matrix(plots["confusion_matrix"])
    if lr_finder is not None:
        plots["lr_finder"] = os.path.join(plot_dir, "lr_finder.png")
        lr_finder.plot(plots["lr_finder"])
    from kerascnn.data import metrics as kmetrics

    plot_top_losses = getattr(kmetrics, "plot_top_losses", None)
    if (plot_top_losses is not None and evaluation is not None
            and source is not None and source.labels is not None):
        y_true, y_prob = evaluation.y_true, evaluation.y_prob
        losses = -np.log(np.clip(y_prob[np.arange(len(y_true)), y_true],
                                 1e-7, 1.0))
        top = np.sort(np.argsort(-losses)[:TOP_LOSSES])
        plots["top_losses"] = os.path.join(plot_dir, "top_losses.png")
        plot_top_losses(_images_at(source, top, batch_size), y_true[top],
                        y_prob[top], list(class_names), plots["top_losses"],
                        k=len(top))
    return plots
