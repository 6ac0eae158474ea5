"""The standard callbacks every workflow trains with, made in one place.

- `early_stopping`: kerascnn's `EarlyStopping` (NaN stop, `stop_reason`),
  best weights restored.
- `backup`: `keras.callbacks.BackupAndRestore` plus a `HistoryJournal`, so
  that a killed run resumes after its last finished epoch and reports every
  epoch; `check_backup` refuses a `backup_dir` written for another model or
  other data before training.
- `tensorboard`, `diagnosis`: `keras.callbacks.TensorBoard` and
  `kerascnn.callbacks.LossCurveDiagnosis`.
"""

import hashlib
import json
import os

import keras

from kerascnn import _validation

#: Folder of `BackupAndRestore`'s state inside a `backup_dir`.
BACKUP_STATE = "state"
#: File of the per-epoch history inside a `backup_dir`.
BACKUP_HISTORY = "history.json"
#: File identifying the model and data a `backup_dir` was written for.
BACKUP_FINGERPRINT = "kerascnn_run.json"


def early_stopping(patience, monitor="val_loss", restore_best_weights=True,
                   verbose=0, mode="auto"):
    """kerascnn's `EarlyStopping` (NaN stop, `stop_reason`), best restored."""
    from kerascnn.callbacks import EarlyStopping

    return EarlyStopping(monitor=monitor, patience=patience, mode=mode,
                         restore_best_weights=restore_best_weights,
                         verbose=verbose)


def tensorboard(log_dir):
    """`keras.callbacks.TensorBoard` writing to `log_dir`."""
    return keras.callbacks.TensorBoard(log_dir)


def diagnosis(num_classes):
    """A silent `LossCurveDiagnosis` (read its `.diagnosis` after fit)."""
    from kerascnn.callbacks import LossCurveDiagnosis

    return LossCurveDiagnosis(verbose=0, num_classes=num_classes)


class HistoryJournal(keras.callbacks.Callback):
    """Keeps the per-epoch logs on disk so that a resumed run reports all.

    Args:
        path: JSON file of `{epoch: logs}`, replaced atomically each epoch.
        write: Whether this process writes it (the chief only, in a
            multi-worker run). Defaults to `True`.
    """

    def __init__(self, path, write=True):
        super().__init__()
        self.path = path
        self.write = write

    def _read(self):
        if not os.path.exists(self.path):
            return {}
        with open(self.path, encoding="utf-8") as handle:
            return json.load(handle)

    def on_epoch_end(self, epoch, logs=None):
        if not self.write:
            return
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
        if self.write and os.path.exists(self.path):
            os.remove(self.path)


def backup(backup_dir, write=True):
    """`(journal, BackupAndRestore)` for `backup_dir`.

    The callback is `kerascnn.core.distribute.backup_and_restore`: Keras'
    `BackupAndRestore`, written by the chief only in a multi-worker run.
    """
    from kerascnn.core import distribute

    journal = HistoryJournal(os.path.join(backup_dir, BACKUP_HISTORY),
                             write=write)
    return journal, distribute.backup_and_restore(
        os.path.join(backup_dir, BACKUP_STATE))


def _strip_names(value):
    if isinstance(value, dict):
        return {k: _strip_names(v) for k, v in value.items() if k != "name"}
    if isinstance(value, (list, tuple)):
        return [_strip_names(v) for v in value]
    return value


def model_fingerprint(model):
    """A short hash of the model's architecture (its config, names aside)."""
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, ValueError):
        config = [(type(layer).__name__, tuple(w.shape for w in
                                               layer.weights))
                  for layer in model.layers]
    text = json.dumps(_strip_names(config), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def check_backup(backup_dir, model, data_fingerprint, write=True):
    """Refuses to resume from a `backup_dir` of another model or data.

    Writes `kerascnn_run.json` (model and data fingerprints) into
    `backup_dir` on the first run; a later run whose model or data differ
    gets an `ArgumentError` naming `backup_dir` before training, instead of a
    Keras error deep inside the weight loading.
    """
    path = os.path.join(backup_dir, BACKUP_FINGERPRINT)
    current = {"model": model_fingerprint(model),
               "data": str(data_fingerprint)}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                stored = json.load(handle)
        except (OSError, ValueError):
            stored = {}
        if os.path.isdir(os.path.join(backup_dir, BACKUP_STATE)):
            changed = [key for key in ("model", "data")
                       if stored.get(key) != current[key]]
            if changed:
                raise _validation.ArgumentError(
                    "Argument `backup_dir` must hold a backup of this run to "
                    f"resume it, but its {' and '.join(changed)} differ from "
                    "the run started now (pass a new `backup_dir`, or delete "
                    "this one to start afresh). Received: backup_dir="
                    f"{backup_dir!r}")
    elif os.path.isdir(os.path.join(backup_dir, BACKUP_STATE)) and (
            os.listdir(os.path.join(backup_dir, BACKUP_STATE))):
        # A backup written before fingerprints existed: resume as before.
        return
    if write:
        os.makedirs(backup_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(current, handle)
        os.replace(tmp, path)
