"""`search`: one call from a dataset to the best CNN, its trials table and plot."""

import contextlib
import csv
import json
import math
import os
import warnings

import numpy as np

from kerascnn import _validation
from kerascnn.core import data as core_data
from kerascnn.core import distribute
from kerascnn.core import trainer
from kerascnn.core.results import SearchResult
from kerascnn.core.settings import CLASS_WEIGHT_METHODS
from kerascnn.core.settings import DataSettings
from kerascnn.tuning import tuners as tuners_module
from kerascnn.tuning.hypermodel import CNNHyperModel, SCHEDULES
from kerascnn.tuning.space import SearchSpace

OBJECTIVES = ("val_accuracy", "val_loss", "accuracy", "loss")
"""Objectives `search` accepts (direction inferred by KerasTuner)."""

DISTRIBUTED_ROLES = ("chief", "worker")

#: File in the project folder naming the data and settings of the search.
PROJECT_FILE = "kerascnn_project.json"

#: Metrics copied from every trial into the trials table.
_TABLE_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss", "replicas",
                  "global_batch_size")
_HP_COLUMNS = ("depth", "filter_size", "stride", "padding", "pooling",
               "filters", "normalization", "dropout", "learning_rate")


def search(data, tuner="hyperband", space=None, max_trials=10, epochs=10,
           batch_size=32, objective="val_accuracy", patience=3,
           strategy="auto", class_weight=None, schedule=None,
           augmentation=None, normalize=True, validation_split=0.1,
           test_split=0.1, seed=42, directory="kerascnn_tuning",
           project_name=None, overwrite=False, retrain=False,
           results_dir=None, callbacks=None, distributed=None,
           oracle_address="127.0.0.1:8000", tuner_id=None,
           executions_per_trial=1, hyperband_factor=3,
           max_consecutive_failed_trials=3, verbose=1, *,
           validation_data=None, test_data=None, image_size=None,
           color_mode=None, on_error="raise", cache=None,
           precision="float32", jit_compile="auto", steps_per_execution=1):
    """Tunes a `build_cnn` network on `data` with KerasTuner.

    What it adds over calling KerasTuner directly: the space is shaped so
    that no conv stack that collapses for this input is ever drawn (see
    `CNNHyperModel`); every argument, the data and the space are checked
    before the first trial; each trial stops early, uses the class weights
    and (optionally) a cyclical learning rate; `strategy="auto"` mirrors over
    all visible GPUs with the global batch = per-replica batch x replicas;
    memory is released after every trial; resuming a stopped search (also a
    grid search) continues it; the best model can be retrained on train +
    validation for the best trial's epoch count; the trials are written as
    CSV, JSON and a PNG of the objective by trial; KerasTuner's chief/worker
    mode is one argument.

    The data streams (`kerascnn.core`, shared with `fit`): trials train on
    `ImageSource.dataset` pipelines (a folder is never held in memory), the
    normalizer statistics come from a bounded sample of the training split
    and the class weights from its class counts. The project folder records
    the data fingerprint and the search settings: rerunning in the same
    project with other data or settings is refused before any trial
    (`overwrite=True` or another `project_name` starts a new search).

    Args:
        data: Anything `kerascnn.data.sources.resolve_data` accepts
            (`"mnist5k"`, `"digits"`, a class folder, `(images, labels)`, a
            `tf.data.Dataset`, a `keras.utils.PyDataset`), or a
            `kerascnn.data.Splits` / 6-tuple `(x_train, y_train, x_val,
            y_val, x_test, y_test)` (the test arrays may be empty).
        tuner: One of `"hyperband"`, `"bayesian"`, `"random"`, `"grid"`.
            Defaults to `"hyperband"`.
        space: A `SearchSpace`, a dict of its arguments or `None` (the
            lecture's defaults). Defaults to `None`.
        max_trials: Integer >= 1, trials at most (also for Hyperband).
            Defaults to `10`.
        epochs: Integer >= 1, epochs per trial at most (Hyperband's
            `max_epochs`). Defaults to `10`.
        batch_size: Integer >= 1, the per-replica batch size. Defaults to
            `32`.
        objective: One of `OBJECTIVES`. Defaults to `"val_accuracy"`.
        patience: Integer >= 1, early-stopping patience in every trial.
            Defaults to `3`.
        strategy: `"auto"`, `None` or a `tf.distribute.Strategy`, with the
            meanings of `kerascnn.core.distribute.resolve_strategy` (`"auto"`:
            MirroredStrategy over this machine's GPUs when there are
            several, so each KerasTuner worker uses its own GPUs). Defaults
            to `"auto"`.
        class_weight: `None`, `"balanced"`, `"effective_number"` (computed
            on the training split by `kerascnn.data.class_weights`) or a
            dict. Defaults to `None`.
        schedule: `None`, one of `SCHEDULES` or a callable
            `f(learning_rate) -> schedule`; see `CNNHyperModel`. Defaults to
            `None`.
        augmentation: `None`, a `kerascnn.data.augmentation` preset name or
            a callable returning a fresh layer. Defaults to `None`.
        normalize: Boolean, put a `Normalization` with the training
            statistics inside every model. Defaults to `True`.
        validation_split: Fraction for validation when `data` is split
            here. Defaults to `0.1`.
        test_split: Fraction for the test set when `data` is split here.
            Defaults to `0.1`.
        seed: Integer >= 0 for the split, the oracle and the weights.
            Defaults to `42`.
        directory: KerasTuner's working directory. Defaults to
            `"kerascnn_tuning"`.
        project_name: Project folder; `None` uses the tuner name. Running
            the same search again (`overwrite=False`) resumes it. Defaults
            to `None`.
        overwrite: Boolean, start the project afresh. Defaults to `False`.
        retrain: Boolean, retrain the best configuration on train +
            validation for its best epoch count. Defaults to `False`.
        results_dir: Where the trials table and plot go; `None` uses the
            project folder. Defaults to `None`.
        callbacks: Extra Keras callbacks for every trial (deep-copied by
            KerasTuner). Defaults to `None`.
        distributed: `None`, `"chief"` or `"worker"`: KerasTuner's
            chief/worker mode (`KERASTUNER_ORACLE_IP/PORT`,
            `KERASTUNER_TUNER_ID` are set from the next two arguments).
            Defaults to `None`.
        oracle_address: `"host:port"` of the chief. Defaults to
            `"127.0.0.1:8000"`.
        tuner_id: This worker's id (`"chief"` for the chief); `None` gives
            `"chief"` / `"tuner0"`. Defaults to `None`.
        executions_per_trial: Integer >= 1. Defaults to `1`.
        hyperband_factor: Integer >= 2, Hyperband's reduction factor.
            Defaults to `3`.
        max_consecutive_failed_trials: Integer >= 1. Defaults to `3`.
        verbose: 0, 1 or 2, KerasTuner's and Keras' verbosity. Defaults to
            `1`.
        validation_data: Optional explicit validation split (same kinds as
            `data`). Defaults to `None`.
        test_data: Optional explicit test split. Defaults to `None`.
        image_size: `None` or `(height, width)` for a folder. Defaults to
            `None`.
        color_mode: `None`, `"rgb"`, `"grayscale"` or `"rgba"`. Defaults to
            `None`.
        on_error: `"raise"` or `"skip"` for unreadable files. Defaults to
            `"raise"`.
        cache: `None`, `"memory"` or a file path. Defaults to `None`.
        precision: `"float32"`, `"mixed_float16"`, `"mixed_bfloat16"` or
            `"auto"`: the dtype policy every trial's model is built under.
            Defaults to `"float32"`.
        jit_compile: `"auto"`, `True` or `False`. Defaults to `"auto"`.
        steps_per_execution: Integer >= 1. Defaults to `1`.

    Returns:
        A `SearchResult`.

    Raises:
        ArgumentError: for a bad argument, bad data, an empty search space,
            a depth that no filter size / stride / padding supports for the
            input size, or a project written for other data or settings,
            before any trial runs.
    """
    # -- arguments (cheap checks first, nothing written) ---------------------
    tuner = _validation.check_option("tuner", tuner, tuners_module.TUNERS)
    space = SearchSpace.from_config(space)
    max_trials = _validation.check_positive_int("max_trials", max_trials)
    epochs = _validation.check_positive_int("epochs", epochs)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    objective = _validation.check_option("objective", objective, OBJECTIVES)
    patience = _validation.check_positive_int("patience", patience)
    if schedule is not None and not callable(schedule):
        schedule = _validation.check_option("schedule", schedule, SCHEDULES)
    normalize = _validation.check_bool("normalize", normalize)
    if seed is not None:
        seed = _validation.check_non_negative_int("seed", seed)
    directory = os.fspath(_check_path("directory", directory))
    project_name = _validation.check_string(
        "project_name", tuner if project_name is None else project_name)
    overwrite = _validation.check_bool("overwrite", overwrite)
    retrain = _validation.check_bool("retrain", retrain)
    if results_dir is not None:
        results_dir = os.fspath(_check_path("results_dir", results_dir))
    callbacks = _check_callbacks(callbacks)
    if distributed is not None:
        distributed = _validation.check_option("distributed", distributed,
                                               DISTRIBUTED_ROLES)
    host, port = _check_address(oracle_address)
    if tuner_id is not None:
        tuner_id = _validation.check_string("tuner_id", tuner_id)
    if distributed == "chief" and tuner_id is not None and "chief" not in (
            tuner_id):
        _validation.fail("tuner_id", "an id containing 'chief' for the chief "
                         "(KerasTuner's rule)", tuner_id)
    if distributed == "worker" and tuner_id is not None and "chief" in (
            tuner_id):
        _validation.fail("tuner_id", "a worker id without 'chief'", tuner_id)
    executions_per_trial = _validation.check_positive_int(
        "executions_per_trial", executions_per_trial)
    hyperband_factor = _validation.check_int("hyperband_factor",
                                             hyperband_factor, 2)
    max_consecutive_failed_trials = _validation.check_positive_int(
        "max_consecutive_failed_trials", max_consecutive_failed_trials)
    verbose = _validation.check_int("verbose", verbose, 0, 2)
    # First: a multi-worker strategy must exist before any TensorFlow op.
    strategy = distribute.resolve_strategy(strategy)
    jit_compile = distribute.check_jit_compile(jit_compile)
    steps_per_execution = distribute.check_steps_per_execution(
        steps_per_execution)
    policy = distribute.resolve_precision(precision)
    if class_weight is not None and not isinstance(class_weight, dict):
        class_weight = _validation.check_option(
            "class_weight", class_weight, CLASS_WEIGHT_METHODS)
    data_settings = DataSettings(
        validation_split=validation_split, test_split=test_split,
        seed=42 if seed is None else seed, image_size=image_size,
        color_mode=color_mode, on_error=on_error, cache=cache)

    # -- data and space ------------------------------------------------------
    resolved = core_data.resolve(data, data_settings,
                                 validation_data=validation_data,
                                 test_data=test_data)
    plan = trainer.setup_strategy(strategy, batch_size,
                                  resolved.train.num_samples)
    num_replicas, global_batch = plan.replicas, plan.global_batch_size
    num_classes = resolved.num_classes
    if isinstance(class_weight, str):
        class_weight = trainer.class_weight_for(class_weight, resolved.train,
                                                num_classes)
    augmentation = _resolve_augmentation(augmentation, seed)
    if tuner == "grid" and space.learning_rate_step is None and isinstance(
            space.learning_rate, tuple):
        space = space.replace(learning_rate_step=math.sqrt(10.0))
    input_shape = tuple(resolved.input_shape)
    hypermodel = CNNHyperModel(
        input_shape, num_classes, space=space, batch_size=batch_size,
        normalizer=(trainer.normalizer_sample(resolved.train, seed or 0)
                    if normalize else None),
        augmentation=augmentation, schedule=schedule,
        steps_per_epoch=resolved.train.steps(global_batch) or None,
        epochs=epochs, class_weight=class_weight, patience=patience,
        monitor=objective, precision=policy, jit_compile=jit_compile,
        steps_per_execution=steps_per_execution)
    if verbose:
        report = hypermodel.report
        print(f"kerascnn.tuning: {report.valid} of {report.total} conv "
              f"configurations fit {input_shape[0]}x{input_shape[1]} "
              f"inputs; {report.excluded} collapse or do not tile and are "
              f"never drawn. {plan.description}.")
    project_dir = os.path.join(directory, project_name)
    project = {"data": resolved.fingerprint, "settings": {
        "tuner": tuner, "objective": objective, "epochs": epochs,
        "batch_size": batch_size, "hyperband_factor": hyperband_factor,
        "schedule": schedule if isinstance(schedule, str) else None,
        "normalize": normalize, "precision": policy,
        "search_space": hypermodel.space.get_config()}}
    trainer.check_outputs({"directory": directory,
                           "results_dir": results_dir})
    if distributed != "worker":
        _check_project(project_dir, project, overwrite)
    train_ds = core_data.shard(resolved.train.dataset(
        global_batch, shuffle=True, seed=seed))
    val_ds = core_data.shard(resolved.validation.dataset(global_batch))
    kt_strategy = strategy if _is_real_strategy(strategy) else None

    # -- search --------------------------------------------------------------
    role = distributed or "local"
    with _distributed_env(distributed, host, port, tuner_id):
        if seed is not None:
            import keras

            keras.utils.set_random_seed(seed)
        kt_tuner = tuners_module.make_tuner(
            tuner, hypermodel, objective=objective, max_trials=max_trials,
            epochs=epochs, seed=seed, strategy=kt_strategy,
            directory=directory,
            project_name=project_name,
            overwrite=overwrite and distributed != "worker",
            executions_per_trial=executions_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            hyperband_factor=hyperband_factor)
        if distributed != "worker":
            os.makedirs(project_dir, exist_ok=True)
            _write_json(os.path.join(project_dir, PROJECT_FILE), project)
        kt_tuner.search(train_ds, validation_data=val_ds, epochs=epochs,
                        callbacks=callbacks, verbose=verbose)
        tuners_module.release_memory()
        results_dir = results_dir or os.path.join(directory, project_name)
        os.makedirs(results_dir, exist_ok=True)
        ran = [t["trial_id"] for t in kt_tuner.ran_trials]
        common = dict(
            role=role, ran_trials=ran, tuner=kt_tuner,
            num_replicas=num_replicas, global_batch_size=global_batch,
            space_report=hypermodel.report,
            class_names=list(resolved.class_names), data=resolved,
            fingerprint=resolved.fingerprint)
        if role == "worker":
            worker_id = kt_tuner.tuner_id
            path = os.path.join(results_dir, f"worker_{worker_id}.json")
            _write_json(path, {"tuner_id": worker_id,
                               "ran_trials": kt_tuner.ran_trials})
            return SearchResult(
                best_hyperparameters=None, best_values=None, best_score=None,
                best_trial_id=None, best_epochs=None, best_model=None,
                test_metrics={}, trials=[], files={"worker_json": path},
                **common)

    oracle = kt_tuner.oracle
    trials = trials_table(oracle, hypermodel)
    files = write_trials(trials, results_dir, objective)
    best = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
    if not best:
        return SearchResult(
            best_hyperparameters=None, best_values=None, best_score=None,
            best_trial_id=None, best_epochs=None, best_model=None,
            test_metrics={}, trials=trials, files=files, **common)
    best = best[0]
    best_epochs = _trained_epochs(best)
    best_model = _best_model(kt_tuner, best, hypermodel, kt_strategy,
                             retrain, best_epochs, resolved, global_batch,
                             class_weight, seed, verbose)
    test_metrics = {}
    if best_model is not None and resolved.test is not None:
        evaluation = trainer.evaluate(best_model, resolved.test,
                                      global_batch, resolved.class_names)
        test_metrics = {k: evaluation.metrics[k]
                        for k in ("accuracy", "loss")}
    best_hp = hypermodel.decode(best.hyperparameters)
    files["best_json"] = os.path.join(results_dir, "best.json")
    _write_json(files["best_json"], {
        "trial_id": best.trial_id, "score": best.score,
        "objective": objective, "hyperparameters": best_hp,
        "epochs": best_epochs, "retrained": retrain,
        "test_metrics": test_metrics,
        "search_space": hypermodel.space.get_config()})
    return SearchResult(
        best_hyperparameters=best_hp,
        best_values=dict(best.hyperparameters.values),
        best_score=float(best.score), best_trial_id=best.trial_id,
        best_epochs=best_epochs, best_model=best_model,
        test_metrics=test_metrics, trials=trials, files=files, **common)


# -- helpers -------------------------------------------------------------------


def _is_real_strategy(strategy):
    """Whether `strategy` is more than TensorFlow's default strategy."""
    import tensorflow as tf

    if strategy is None:
        return False
    if tf.distribute.has_strategy():  # a strategy the caller entered
        return True
    return not isinstance(strategy, type(tf.distribute.get_strategy()))


def _check_project(project_dir, project, overwrite):
    """Refuses to resume a project written for other data or settings."""
    path = os.path.join(project_dir, PROJECT_FILE)
    if overwrite or not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        stored = {}
    stored = json.loads(json.dumps(stored, default=_json_default))
    current = json.loads(json.dumps(project, default=_json_default))
    changed = [key for key in ("data",) if stored.get(key) != current[key]]
    changed += [f"settings.{k}" for k in current["settings"]
                if stored.get("settings", {}).get(k) != current["settings"][k]]
    if changed:
        raise _validation.ArgumentError(
            f"Argument `project_name` must name a project of this search to "
            f"resume it, but the project {project_dir!r} was written for "
            f"other {', '.join(changed)}; pass overwrite=True (`--overwrite`) "
            "to start it afresh or another project_name (`--project-name`); "
            f"nothing was run. Received: project_name="
            f"{os.path.basename(project_dir)!r}")


def _check_path(name, value):
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        _validation.fail(name, "a non-empty path", value)
    return value


def _check_callbacks(callbacks):
    import keras

    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)) or not all(
            isinstance(c, keras.callbacks.Callback) for c in callbacks):
        _validation.fail("callbacks", "None or a list of Keras callbacks",
                         callbacks)
    return list(callbacks)


def _check_address(address):
    if isinstance(address, str) and address.count(":") == 1:
        host, port = address.split(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return host, int(port)
    _validation.fail("oracle_address", "a 'host:port' string", address)


@contextlib.contextmanager
def _distributed_env(role, host, port, tuner_id):
    """Sets KerasTuner's chief/worker environment variables for a block."""
    keys = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT",
            "KERASTUNER_TUNER_ID")
    saved = {key: os.environ.get(key) for key in keys}
    if role is None:
        for key in keys:
            os.environ.pop(key, None)
    else:
        os.environ["KERASTUNER_ORACLE_IP"] = host
        os.environ["KERASTUNER_ORACLE_PORT"] = str(port)
        os.environ["KERASTUNER_TUNER_ID"] = tuner_id or (
            "chief" if role == "chief" else "tuner0")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _resolve_augmentation(augmentation, seed):
    if augmentation is None or callable(augmentation):
        return augmentation
    from kerascnn import data as data_module

    preset = _validation.check_option(
        "augmentation", augmentation,
        tuple(data_module.list_augmentation_presets()))
    return lambda: data_module.augmentation(preset, seed=seed)


def _trained_epochs(trial):
    """Epochs from scratch to the best epoch of `trial`."""
    values = trial.hyperparameters.values
    start = int(values.get("tuner/initial_epoch", 0) or 0)
    return start + int(trial.best_step or 0) + 1


def _best_model(kt_tuner, best, hypermodel, strategy, retrain, best_epochs,
                resolved, global_batch, class_weight, seed, verbose):
    import tensorflow as tf

    if retrain:
        tuners_module.release_memory()
        scope = strategy.scope() if strategy else contextlib.nullcontext()
        with scope:
            model = hypermodel.build(best.hyperparameters.copy())
        both = resolved.train.dataset(global_batch, shuffle=True, seed=seed)
        both = both.concatenate(resolved.validation.dataset(global_batch))
        model.fit(core_data.shard(both), epochs=best_epochs,
                  class_weight=class_weight, verbose=verbose)
        return model
    try:
        with warnings.catch_warnings():
            # KerasTuner restores weights only; the optimizer is not needed.
            warnings.filterwarnings("ignore", message="Skipping variable "
                                    "loading for optimizer")
            return kt_tuner.get_best_models(1)[0]
    except (OSError, ValueError, tf.errors.NotFoundError):
        # A chief whose workers wrote their checkpoints on other machines.
        return None


def trials_table(oracle, hypermodel):
    """One dict per trial: status, score, decoded hyperparameters, metrics."""
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        row = {"trial_id": trial_id, "status": trial.status,
               "score": None if trial.score is None else float(trial.score),
               "best_step": trial.best_step}
        if "depth" in values:
            row.update(hypermodel.decode(values))
        else:  # a trial that stopped before its values were drawn
            row.update({key: None for key in _HP_COLUMNS})
        for key in ("tuner/epochs", "tuner/initial_epoch", "tuner/round",
                    "tuner/bracket"):
            if key in values:
                row["hyperband_" + key.split("/")[1]] = values[key]
        for name in _TABLE_METRICS:
            row[name] = (float(trial.metrics.get_last_value(name))
                         if trial.metrics.exists(name) else None)
        row["message"] = (trial.message or "").strip().splitlines()[-1:] or ""
        if isinstance(row["message"], list):
            row["message"] = row["message"][0] if row["message"] else ""
        rows.append(row)
    return rows


def write_trials(trials, results_dir, objective):
    """Writes `trials.csv`, `trials.json` and `objective.png`; returns paths."""
    os.makedirs(results_dir, exist_ok=True)
    files = {
        "trials_csv": os.path.join(results_dir, "trials.csv"),
        "trials_json": os.path.join(results_dir, "trials.json"),
        "objective_png": os.path.join(results_dir, "objective.png"),
    }
    columns = []
    for row in trials:
        columns.extend(k for k in row if k not in columns)
    with open(files["trials_csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns or ["trial_id"])
        writer.writeheader()
        for row in trials:
            writer.writerow({k: "" if row.get(k) is None else row.get(k)
                             for k in columns})
    _write_json(files["trials_json"], trials)
    plot_objective(trials, files["objective_png"], objective)
    return files


def plot_objective(trials, path, objective):
    """Saves a PNG of the objective of every trial and the best so far."""
    from matplotlib import figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # A Figure on its own Agg canvas: the global backend is left alone.
    fig = figure.Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    maximize = "accuracy" in objective
    xs, ys, best_so_far, best = [], [], [], None
    for number, row in enumerate(trials, start=1):
        score = row["score"]
        if row["status"] != "COMPLETED" or score is None:
            continue
        xs.append(number)
        ys.append(score)
        if best is None or (score > best if maximize else score < best):
            best = score
        best_so_far.append(best)
    ax.plot(xs, ys, "o", label=objective)
    ax.step(xs, best_so_far, where="post", label="best so far")
    failed = [n for n, row in enumerate(trials, start=1)
              if row["status"] != "COMPLETED"]
    if failed:
        ax.plot(failed, [min(ys or [0])] * len(failed), "x", color="red",
                label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title(f"{objective} by trial")
    ax.grid(alpha=0.3)
    if xs:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)


def _write_json(path, payload):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, default=_json_default)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
