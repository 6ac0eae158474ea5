"""The result objects of every workflow: dataclasses, one `summary()` style.

`FitResult` (`kerascnn.training.fit`), `SearchResult`
(`kerascnn.tuning.search`) and `TransferResult` (`kerascnn.transfer.fit`)
are dataclasses deriving from `Result`: `summary()` returns a few lines of
text, `to_dict()` the JSON-friendly fields (no model, no tuner, no data).
"""

import dataclasses
import math

import numpy as np

#: Fields `Result.to_dict` leaves out (objects, not values).
_NOT_JSON = ("model", "best_model", "tuner", "report", "diagnosis",
             "lr_finder", "data", "test_source")


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    to_dict = getattr(value, "to_dict", None)
    return _plain(to_dict()) if callable(to_dict) else str(value)


def _number(value):
    if value is None:
        return "n/a"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


@dataclasses.dataclass
class Result:
    """Base of the workflow results: `summary()` and `to_dict()`."""

    def summary_lines(self):
        """The lines of `summary()`; subclasses override."""
        return []

    def summary(self):
        """A few lines of text: data, settings and the outcome."""
        return "\n".join(self.summary_lines())

    def to_dict(self):
        """JSON-friendly fields (objects such as the model are left out)."""
        return {f.name: _plain(getattr(self, f.name))
                for f in dataclasses.fields(self)
                if f.name not in _NOT_JSON}


@dataclasses.dataclass
class FitResult(Result):
    """What `kerascnn.training.fit` returns.

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
        splits: Dict of sample counts, `{"train", "validation", "test"}`
            (`None` for a stream of unknown length).
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
        strategy: One line naming the strategy, its workers and replicas.
        precision: The Keras dtype policy the model was built with.
        diverged: Whether the loss became non-finite or exploded (see
            `kerascnn.core.trainer.divergence`); such a model is not worth
            exporting.
        divergence: Why the run counts as diverged, or `None`.
        plots: Dict name -> path of the PNGs written to `plot_dir` (empty on
            a non-chief worker).
        fingerprint: `ResolvedData.fingerprint` of the data.
        test_source: The test split's `ImageSource` (streams its images).
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
    strategy: str = None
    precision: str = "float32"
    diverged: bool = False
    divergence: str = None
    plots: dict = dataclasses.field(default_factory=dict)
    fingerprint: str = None
    test_source: object = dataclasses.field(default=None, repr=False)

    @property
    def test_data(self):
        """`(x_test, y_test)` arrays of the held-out split (raw pixels).

        Read from `test_source` when asked (a streamed split is decoded
        then), e.g. to check an exported model on the same images.
        """
        if self.test_source is None:
            return None
        return self.test_source.to_numpy()

    def summary_lines(self):
        splits = self.splits
        lines = [
            f"Data: {splits['train']} train / {splits['validation']} "
            f"validation / {splits['test']} test images, "
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
            f"Test: loss {_number(self.test_metrics.get('loss'))}, accuracy "
            f"{_number(self.test_metrics.get('accuracy'))}",
        ]
        if self.diverged:
            lines.append(f"DIVERGED: {self.divergence}")
        return lines


@dataclasses.dataclass
class SearchResult(Result):
    """What `kerascnn.tuning.search` returns.

    Attributes:
        best_hyperparameters: Dict of `build_cnn` arguments plus
            `learning_rate` of the best trial (`None` on a worker).
        best_values: The raw KerasTuner values of the best trial.
        best_score: The best objective value.
        best_trial_id: Its trial id.
        best_epochs: Epochs the best trial needed (used for retraining).
        best_model: The best model (retrained on train + validation when
            `retrain=True`, else the best trial's best checkpoint); `None` on
            a worker, or on a chief without access to the workers' files.
        test_metrics: Dict from evaluating `best_model` on the test split
            (empty without a test split or a model).
        trials: List of dicts, one per trial (the trials table).
        files: Dict with the paths of `trials_csv`, `trials_json`,
            `objective_png` and `best_json` (those written).
        num_replicas: Replicas each trial trained on.
        global_batch_size: Per-replica batch size times `num_replicas`.
        space_report: The `SpaceReport` of the conv configurations: `total`,
            `valid` and `excluded` (collapsing stacks, never drawn).
        role: `"local"`, `"chief"` or `"worker"`.
        ran_trials: Trial ids this process trained.
        tuner: The KerasTuner tuner (for `results_summary()` and the like).
        class_names: Class names of the data.
        data: The `ResolvedData` the search used (streams its splits).
        fingerprint: `ResolvedData.fingerprint`, stored in the project.
    """

    best_hyperparameters: dict = None
    best_values: dict = None
    best_score: float = None
    best_trial_id: str = None
    best_epochs: int = None
    best_model: object = dataclasses.field(default=None, repr=False)
    test_metrics: dict = dataclasses.field(default_factory=dict)
    trials: list = dataclasses.field(default_factory=list, repr=False)
    files: dict = dataclasses.field(default_factory=dict)
    num_replicas: int = 1
    global_batch_size: int = None
    space_report: object = None
    role: str = "local"
    ran_trials: list = dataclasses.field(default_factory=list)
    tuner: object = dataclasses.field(default=None, repr=False)
    class_names: list = None
    data: object = dataclasses.field(default=None, repr=False)
    fingerprint: str = None

    @property
    def splits(self):
        """The search's splits as a `kerascnn.data.Splits` of arrays.

        Decoded from `data` when asked (empty test arrays without a test
        split).
        """
        from kerascnn.data.splits import Splits

        parts = []
        for source in (self.data.train, self.data.validation,
                       self.data.test):
            if source is None:
                shape = (0,) + tuple(self.data.input_shape)
                parts += [np.zeros(shape, "float32"), np.zeros(0, np.int64)]
            else:
                parts += list(source.to_numpy())
        return Splits(*parts)

    def to_dict(self):
        """JSON-friendly summary (no model, no tuner, no data)."""
        report = self.space_report
        return {
            "role": self.role,
            "best_trial_id": self.best_trial_id,
            "best_score": self.best_score,
            "best_hyperparameters": _plain(self.best_hyperparameters),
            "best_epochs": self.best_epochs,
            "test_metrics": _plain(self.test_metrics),
            "num_replicas": self.num_replicas,
            "global_batch_size": self.global_batch_size,
            "conv_configurations": None if report is None else {
                "total": report.total, "valid": report.valid,
                "excluded": report.excluded},
            "ran_trials": list(self.ran_trials),
            "num_trials": len(self.trials),
            "files": dict(self.files),
            "fingerprint": self.fingerprint,
        }

    def summary_lines(self):
        report = self.space_report
        lines = [
            f"Conv configurations: {report.valid} valid of {report.total} "
            f"({report.excluded} collapse or do not tile for this input and "
            "were never drawn)",
            f"Replicas per trial: {self.num_replicas} (global batch "
            f"{self.global_batch_size})",
        ]
        if self.best_hyperparameters is None:
            lines.append(f"Trials run by this {self.role}: "
                         + (", ".join(self.ran_trials) or "none"))
            return lines
        completed = sum(t["status"] == "COMPLETED" for t in self.trials)
        lines.append(f"Trials: {len(self.trials)} ({completed} completed)")
        lines.append(f"Best trial {self.best_trial_id}: score "
                     f"{self.best_score:.4f} after {self.best_epochs} epochs")
        lines.append("Best configuration: " + ", ".join(
            f"{k}={v!r}" for k, v in self.best_hyperparameters.items()))
        if self.test_metrics:
            lines.append("Test metrics: " + ", ".join(
                f"{k}={v:.4f}" for k, v in self.test_metrics.items()))
        return lines
