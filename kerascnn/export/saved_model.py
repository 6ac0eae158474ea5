"""Verified, atomic export of a Keras model as a TensorFlow SavedModel.

`keras.Model.export` writes a SavedModel with a `serve` signature, but
straight into its destination: a crash, a full disk or a layer that exports
wrongly leaves a half-written or silently different model where the good one
was. `export_model` writes into a temporary sibling folder, reloads what it
wrote (both the SavedModel and the `.keras` file) and compares their outputs
with the in-memory model, and only then renames the folder into place.

An export folder `directory/name/` holds:

    saved_model/    SavedModel, `serve` signature on raw pixels
    model.keras     the Keras model (for further training or fine-tuning)
    metadata.json   class names, input shape/dtype, metrics, versions, time
"""

import datetime
import json
import os
import platform
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kerascnn import _validation
from kerascnn.export import safety

SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RESERVED_KEYS = (
    "name", "class_names", "num_classes", "input_shape", "input_dtype",
    "versions", "created", "files", "verified_atol", "format_version",
    safety.MARKER_KEY,
)
_PREDICT_BATCH = 256


# -- argument checks ---------------------------------------------------------


def _check_name(name):
    if (
        not isinstance(name, str)
        or not _NAME_PATTERN.match(name)
        or ".." in name
        or len(name) > 200
    ):
        _validation.fail(
            "name", "a plain folder name (letters, digits, '.', '_' and '-', "
            "starting with a letter or digit; no path separators or '..')",
            name,
        )
    return name


def _check_model(model):
    if not isinstance(model, keras.Model):
        _validation.fail("model", "a keras.Model", model)
    inputs = getattr(model, "inputs", None)
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not inputs or len(inputs) != 1 or not outputs or len(outputs) != 1:
        _validation.fail(
            "model", "a built functional or Sequential keras.Model with one "
            "input and one output", model,
        )
    input_shape = tuple(inputs[0].shape[1:])
    if len(input_shape) != 3 or any(dim is None for dim in input_shape):
        _validation.fail(
            "model", "a model on images of known size (input shape (batch, "
            "height, width, channels))",
            f"model with input shape {tuple(inputs[0].shape)}",
        )
    output_shape = tuple(outputs[0].shape)
    if len(output_shape) != 2 or output_shape[-1] is None:
        _validation.fail(
            "model", "a classifier with outputs of shape (batch, num_classes)",
            f"model with output shape {output_shape}",
        )
    dtype = keras.backend.standardize_dtype(inputs[0].dtype)
    return tuple(int(d) for d in input_shape), dtype, int(output_shape[-1])


def _check_sample(sample, input_shape, dtype):
    if sample is None:
        # A deterministic sample of raw pixel values in [0, 255].
        rng = np.random.default_rng(0)
        sample = rng.uniform(0.0, 255.0, size=(4,) + input_shape)
        return sample.astype(dtype)
    array = _validation.check_images("sample", sample)
    if tuple(array.shape[1:]) != input_shape:
        _validation.fail(
            "sample", f"a batch of inputs of shape (n,) + {input_shape}",
            f"array of shape {array.shape}",
        )
    return array.astype(dtype)


def _check_class_names(class_names, num_classes):
    if class_names is None:
        return None
    if isinstance(class_names, str) or not isinstance(
            class_names, (list, tuple)):
        _validation.fail(
            "class_names", f"a list of {num_classes} strings", class_names)
    names = list(class_names)
    if len(names) != num_classes or not all(isinstance(n, str) for n in names):
        _validation.fail(
            "class_names", f"a list of {num_classes} strings (one per model "
            "output)", class_names,
        )
    if len(set(names)) != len(names):
        _validation.fail("class_names", "a list of distinct strings",
                         class_names)
    return names


def _check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(
            isinstance(key, str) for key in metadata):
        _validation.fail("metadata", "a dict with string keys or None",
                         metadata)
    clash = sorted(set(metadata) & set(_RESERVED_KEYS))
    if clash:
        _validation.fail(
            "metadata", "a dict without the keys export_model writes itself ("
            + ", ".join(_RESERVED_KEYS) + ")", f"dict with keys {clash}",
        )
    try:
        # Round trip so that numpy scalars and tuples are stored plainly.
        return json.loads(json.dumps(metadata, default=_json_default))
    except (TypeError, ValueError) as error:
        raise _validation.ArgumentError(
            "Argument `metadata` must be JSON-serializable. Received: "
            f"metadata with a value JSON cannot store ({error})"
        ) from None


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _check_directory(directory):
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(
            directory):
        _validation.fail("directory", "a folder path", directory)
    path = os.fspath(directory)
    if os.path.exists(path) and not os.path.isdir(path):
        _validation.fail("directory", "a folder (not a file)", path)
    return path


def _exists_error(destination):
    return FileExistsError(
        f"An export already exists at {destination!r}; pass overwrite=True to "
        "replace it (the old export is kept until the new one is verified) "
        "or choose another `name`."
    )


def _write_saved_model(model, path, input_shape, dtype):
    """`model.export`, but with the `serve` endpoint pinned to inference.

    `model.export` traces `model(x)` with no `training` argument, so layers
    whose `call` defaults to `training=True` (Keras' random augmentation
    layers) would stay active in `serve`; here it is `training=False`.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None,) + input_shape, dtype)],
    )
    archive.write_out(path, verbose=False)


# -- verification ------------------------------------------------------------


def _serve_outputs(saved_model_path, x):
    """Outputs of the reloaded SavedModel's `serve` endpoint."""
    loaded = tf.saved_model.load(saved_model_path)
    return np.asarray(loaded.serve(tf.constant(x)))


def _keras_outputs(keras_path, x):
    """Outputs of the reloaded `.keras` model."""
    reloaded = keras.saving.load_model(keras_path)
    return np.asarray(reloaded(x, training=False))


def _compare(what, expected, actual, atol):
    if actual.shape != expected.shape or not np.allclose(
            actual, expected, atol=atol, rtol=0.0):
        error = (
            float(np.max(np.abs(actual - expected)))
            if actual.shape == expected.shape else float("nan")
        )
        raise RuntimeError(
            f"Export verification failed: the reloaded {what} does not "
            f"reproduce the model's outputs (max abs difference {error:g}, "
            f"shapes {actual.shape} vs {expected.shape}, atol={atol:g}). "
            "Nothing was exported."
        )


def _versions():
    import kerascnn

    return {
        "kerascnn": kerascnn.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }


# -- public API --------------------------------------------------------------


def export_model(model, name, directory="saved_models", sample=None,
                 overwrite=False, metadata=None, class_names=None, atol=1e-5):
    """Exports a model as a SavedModel plus `.keras` file, verified and atomic.

    Writes `directory/name/` with `saved_model/` (what `model.export` writes:
    a `serve` signature on the model's own input dtype and shape, batch
    `None`, but always traced with `training=False`; give the model its
    normalizer so it takes raw pixels),
    `model.keras` and `metadata.json`.

    What it adds over `keras.Model.export`: arguments and the destination are
    checked before anything is written; the export is built in a temporary
    sibling folder (`directory/.name.tmp-XXXX`), reloaded with
    `tf.saved_model.load` and `keras.saving.load_model` and compared with the
    in-memory model on `sample`; only a verified export is renamed into
    place. On any failure the temporary folder is deleted and an existing
    export is left untouched. With `overwrite=True` the old export is renamed
    aside, the new one renamed in, then the old one deleted, so there is
    always a complete export on disk.

    Args:
        model: A built functional or Sequential `keras.Model` with one input
            and `(batch, num_classes)` outputs.
        name: A plain folder name (letters, digits, `.`, `_`, `-`; no path
            separators or `..`).
        directory: Folder that holds exports; created if missing. Defaults to
            `"saved_models"`.
        sample: Inputs `(n,) + input_shape` to verify on, or `None` for 4
            deterministic random raw-pixel images in [0, 255]. Defaults to
            `None`.
        overwrite: Boolean, replace an existing export. Defaults to `False`.
        metadata: `None` or a JSON-serializable dict (e.g.
            `{"metrics": {"accuracy": 0.98}}`) stored in `metadata.json`.
            Defaults to `None`.
        class_names: `None` or one string per output class. Defaults to
            `None`.
        atol: Float > 0, the largest absolute difference allowed between the
            model's and the reloaded models' outputs. Defaults to `1e-5`.

    Returns:
        The path of the export folder, `directory/name`.

    Raises:
        ArgumentError: for an invalid argument (nothing is written).
        FileExistsError: if the export exists and `overwrite` is `False`
            (checked before any work, and again before the rename).
        RuntimeError: if a reloaded model does not reproduce the outputs.

    Example:

    >>> path = export_model(model, "digits_v1", class_names=list("0123456789"))
    >>> predict_export(path, images).argmax(axis=1)
    """
    input_shape, dtype, num_classes = _check_model(model)
    name = _check_name(name)
    directory = _check_directory(directory)
    overwrite = _validation.check_bool("overwrite", overwrite)
    atol = _validation.check_positive_float("atol", atol)
    sample = _check_sample(sample, input_shape, dtype)
    class_names = _check_class_names(class_names, num_classes)
    user_metadata = _check_metadata(metadata)

    destination = check_export_target(name, directory, overwrite)

    os.makedirs(directory, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=safety.work_prefix(name, "tmp"),
                           dir=directory)
    try:
        _fault_point("tmp_created")
        # mkdtemp creates the folder private (0o700); the export gets the
        # permissions a plain mkdir would have given it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        saved_model_path = os.path.join(tmp, SAVED_MODEL_DIR)
        keras_path = os.path.join(tmp, KERAS_FILE)
        _write_saved_model(model, saved_model_path, input_shape, dtype)
        _fault_point("saved_model_written")
        model.save(keras_path)
        _fault_point("keras_written")
        expected = np.asarray(model(sample, training=False))
        _compare("SavedModel (`serve`)", expected,
                 _serve_outputs(saved_model_path, sample), atol)
        _fault_point("verifying")
        _compare("`.keras` model", expected,
                 _keras_outputs(keras_path, sample), atol)
        _fault_point("verified")
        info = dict(user_metadata)
        info.update(
            kerascnn_export=safety.MARKER_VERSION,
            format_version=FORMAT_VERSION,
            name=name,
            class_names=class_names,
            num_classes=num_classes,
            input_shape=list(input_shape),
            input_dtype=dtype,
            verified_atol=atol,
            files={"saved_model": SAVED_MODEL_DIR, "keras": KERAS_FILE},
            versions=_versions(),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        )
        # The marker is written last: a folder with it is complete.
        with open(os.path.join(tmp, METADATA_FILE), "w",
                  encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
        _fault_point("metadata_written")
        _move_into_place(tmp, destination, directory, name, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return destination


def _fault_point(step):
    """A no-op called at each step of `export_model`.

    The fault-injection tests replace it to raise or to kill the process at
    `step` ("tmp_created", "saved_model_written", "keras_written",
    "verifying", "verified", "metadata_written", "old_aside" (between the
    two renames), "renamed" (before the old copy is deleted), "done").
    """


def check_export_target(name, directory="saved_models", overwrite=False):
    """Checks an export destination before any work; returns its path.

    Used by `export_model` and, before training, by the CLI workflows. In
    order: `name` and `directory` are valid; an export interrupted by a kill
    (see `kerascnn.export.safety.recover_export`) is restored and stale
    temporary folders are removed; an existing `directory/name` must be a
    kerascnn export (marker in `metadata.json`, nothing but export files) --
    anything else is refused even with `overwrite=True` -- and is replaced
    only with `overwrite=True`; `directory` must be writable.

    Raises:
        ArgumentError: invalid `name`/`directory`, or `directory` not
            writable.
        NotAnExportError: (a `FileExistsError`) the target holds something
            that is not a kerascnn export.
        FileExistsError: the export exists and `overwrite` is False.
    """
    name = _check_name(name)
    directory = _check_directory(directory)
    overwrite = _validation.check_bool("overwrite", overwrite)
    destination = os.path.join(directory, name)
    safety.recover_export(directory, name)
    if os.path.lexists(destination):
        empty = (os.path.isdir(destination)
                 and not os.path.islink(destination)
                 and not os.listdir(destination))
        problem = None if empty else safety.export_problem(destination)
        if problem is not None:
            raise safety.NotAnExportError(
                f"Refusing to write an export to {destination!r}: {problem}. "
                "kerascnn replaces only its own exports, and only with "
                "overwrite; nothing was changed. Choose another `name` or "
                "`directory`.")
        if not overwrite:
            raise _exists_error(destination)
    safety.check_writable(directory, "directory")
    return destination


def _move_into_place(tmp, destination, directory, name, overwrite):
    if not os.path.lexists(destination):
        # os.rename of a folder fails if another process created a non-empty
        # destination meanwhile, so an export is never merged into another.
        os.rename(tmp, destination)
        _fault_point("done")
        return
    if not overwrite:
        raise _exists_error(destination)
    if os.path.isdir(destination) and not os.path.islink(destination) \
            and not os.listdir(destination):
        os.rename(tmp, destination)  # replaces an empty folder only
        _fault_point("done")
        return
    problem = safety.export_problem(destination)
    if problem is not None:  # appeared since the check
        raise safety.NotAnExportError(
            f"Refusing to replace {destination!r}: {problem}; nothing was "
            "changed.")
    old = tempfile.mkdtemp(prefix=safety.work_prefix(name, "old"),
                           dir=directory)
    os.rmdir(old)
    os.rename(destination, old)
    try:
        _fault_point("old_aside")
        os.rename(tmp, destination)
    except BaseException:
        if not os.path.lexists(destination):
            os.rename(old, destination)
        raise
    try:
        _fault_point("renamed")
    finally:
        try:
            safety.remove_export_tree(old)
        except OSError:
            pass  # removed by the next call (recover_export)
    _fault_point("done")


class ExportedModel:
    """An export folder loaded for inference.

    Attributes:
        path: The export folder.
        metadata: The dict from `metadata.json`.
        class_names: `metadata["class_names"]` (a list or `None`).
    """

    def __init__(self, path, saved_model, metadata):
        self.path = path
        self.metadata = metadata
        self.class_names = metadata.get("class_names")
        self._saved_model = saved_model
        self._keras_model = None

    def serve(self, x):
        """Runs the SavedModel's `serve` signature on raw inputs (numpy out).

        `x` is cast to the exported input dtype; an image batch without the
        channel axis gets one when the model expects a single channel.
        """
        x = _prepare_inputs("x", x, self.metadata)
        return np.asarray(self._saved_model.serve(tf.constant(x)))

    def keras_model(self):
        """The exported `.keras` model, loaded on first use and cached."""
        if self._keras_model is None:
            self._keras_model = keras.saving.load_model(
                os.path.join(self.path, KERAS_FILE))
        return self._keras_model

    def __repr__(self):
        return (f"ExportedModel(path={self.path!r}, "
                f"num_classes={self.metadata.get('num_classes')})")


def _prepare_inputs(arg, x, metadata):
    input_shape = tuple(metadata["input_shape"])
    array = _validation.check_images(arg, x)
    if tuple(array.shape[1:]) != input_shape:
        _validation.fail(
            arg, f"a batch of inputs of shape (n,) + {input_shape} (the "
            "exported input shape)", f"array of shape {array.shape}",
        )
    return array.astype(metadata["input_dtype"])


def load_export(path):
    """Loads an export folder written by `export_model`.

    If `path` is missing because an export was killed between its two
    renames, the complete previous export it had set aside
    (`.name.old-*`) is restored first (or, if the folder cannot be written,
    loaded from where it is).

    Args:
        path: The export folder (`directory/name`).

    Returns:
        An `ExportedModel` with `.serve(x)` (the SavedModel, no Keras
        needed), `.metadata` and `.keras_model()`.

    Raises:
        ArgumentError: if `path` is not an export folder, or its
            `metadata.json` or SavedModel cannot be read (the message names
            the file).
    """
    if isinstance(path, (str, os.PathLike)) and os.fspath(path) and \
            not os.path.lexists(path):
        aside = safety.find_aside_copy(path)
        if aside is not None:
            directory, name = os.path.split(os.path.abspath(os.fspath(path)))
            restored = None
            if _NAME_PATTERN.match(name):
                try:
                    restored = safety.recover_export(directory, name)
                except OSError:
                    restored = None
            if restored is None and not os.path.lexists(path):
                path = aside
    path = _validation.check_existing_path("path", path, kind="directory")
    metadata_path = os.path.join(path, METADATA_FILE)
    saved_model_path = os.path.join(path, SAVED_MODEL_DIR)
    if not os.path.isfile(metadata_path) or not os.path.isdir(
            saved_model_path):
        _validation.fail(
            "path", f"an export folder with {METADATA_FILE} and "
            f"{SAVED_MODEL_DIR}/ (written by export_model)", path,
        )
    metadata = _read_metadata(metadata_path)
    try:
        loaded = tf.saved_model.load(saved_model_path)
    except Exception as error:  # corrupt/truncated saved_model.pb, ...
        raise _validation.ArgumentError(
            "Argument `path` must be an export folder whose SavedModel "
            f"loads. Received: path={path!r} ({saved_model_path!r} is "
            f"unreadable: {type(error).__name__}: "
            f"{_first_line(error)}); export the model again") from None
    if not hasattr(loaded, "serve"):
        raise _validation.ArgumentError(
            "Argument `path` must be an export folder whose SavedModel has a "
            f"`serve` endpoint. Received: path={path!r}")
    return ExportedModel(path, loaded, metadata)


def _first_line(error):
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    return line[:200]


def _read_metadata(metadata_path):
    """`metadata.json` as a dict with a usable input shape and dtype."""
    def broken(what):
        raise _validation.ArgumentError(
            f"Argument `path` must be an export folder with a valid "
            f"{METADATA_FILE}. Received: {metadata_path!r} ({what})")

    try:
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        broken(f"not valid JSON: {error}")
    except OSError as error:
        broken(f"unreadable: {error.strerror or error}")
    if not isinstance(metadata, dict):
        broken(f"a JSON {type(metadata).__name__}, not an object")
    shape = metadata.get("input_shape")
    if "input_shape" not in metadata:
        broken("no 'input_shape' key")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0
            for d in shape)):
        broken(f"'input_shape' must be [height, width, channels] of positive "
               f"integers, found {shape!r}")
    dtype = metadata.get("input_dtype", "float32")
    try:
        np.dtype(dtype)
    except TypeError:
        broken(f"'input_dtype' is not a dtype: {dtype!r}")
    metadata.setdefault("input_dtype", dtype)
    names = metadata.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(
            isinstance(n, str) for n in names)):
        broken(f"'class_names' must be a list of strings, found {names!r}")
    return metadata


def predict_export(path, images, batch_size=_PREDICT_BATCH):
    """Class probabilities of an exported model for raw `images`.

    Runs the SavedModel's `serve` signature in batches; no Keras objects are
    rebuilt. `images` is validated against the exported input shape first.

    Args:
        path: An export folder, or an `ExportedModel` from `load_export`.
        images: Array `(n,) + input_shape` of raw pixels (a single-channel
            batch may omit the channel axis).
        batch_size: Integer >= 1, images per `serve` call. Defaults to `256`.

    Returns:
        A float numpy array `(n, num_classes)` of probabilities.
    """
    exported = path if isinstance(path, ExportedModel) else load_export(path)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    x = _prepare_inputs("images", images, exported.metadata)
    outputs = [
        np.asarray(exported._saved_model.serve(tf.constant(
            x[start:start + batch_size])))
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs, axis=0)


def export_or_fallback(model, name, directory="saved_models", **kwargs):
    """`export_model`, but a failure never loses the trained model.

    For workflows that call it after training: if `export_model` raises
    anything (a full disk, a folder made read-only meanwhile, a refused
    target, a verification failure), the model is saved with
    `kerascnn.export.safety.save_fallback` (the export folder's parent,
    `./kerascnn_fallback/` or the temporary folder) and an
    `ExportFailedError` says why the export failed and where the model is.

    Args:
        model, name, directory, **kwargs: As for `export_model`.

    Returns:
        The export path.

    Raises:
        ExportFailedError: with `fallback_path` (None only if no place at all
            could be written).
    """
    try:
        return export_model(model, name, directory=directory, **kwargs)
    except Exception as error:
        first = (directory if isinstance(directory, (str, os.PathLike))
                 else None)
        fallback = safety.save_fallback(model, name=name, directory=first)
        where = (f"the trained model was saved to {fallback!r} "
                 "(load it with keras.saving.load_model, then export again)"
                 if fallback else
                 "the trained model could not be saved anywhere either")
        raise safety.ExportFailedError(
            f"Export to {os.path.join(os.fspath(directory), str(name))!r} "
            f"failed ({type(error).__name__}: {_first_line(error)}); {where}.",
            fallback_path=fallback) from error
