"""What keeps an export folder, the user's files and a trained model safe.

* `is_export(path)`: a folder is a kerascnn export only if its
  `metadata.json` carries the `"kerascnn_export"` marker (or is a kerascnn
  0.1 export, which had `format_version` 1 and the `files` layout but no
  marker) and it holds nothing but `saved_model/`, `model.keras` and
  `metadata.json`. Only such a folder is ever replaced (and only with
  `overwrite=True`); anything else at the target is refused, never deleted.
* `recover_export(directory, name)`: an export killed between its two renames
  leaves `directory/.name.old-*` (the complete previous export) and no
  `directory/name`; the next call renames it back. Temporary folders
  (`.name.tmp-*`) and aside copies left by a process that no longer runs are
  deleted, after checking that they hold only export files.
* `check_writable(path, name)`: before any training, the folder (or its
  nearest existing parent, if it is to be created) must accept a new file.
* `save_fallback(model, name, directory)`: when an export fails after
  training, the model is saved as a `.keras` file in the first writable of
  the export folder, `./kerascnn_fallback/` and the system temporary folder,
  and its path is returned for the error message.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings

from kerascnn import _validation

MARKER_KEY = "kerascnn_export"
"""Key of the marker `export_model` writes in `metadata.json`."""
MARKER_VERSION = 1
EXPORT_ENTRIES = frozenset({"saved_model", "model.keras", "metadata.json"})
"""The only entries an export folder holds."""
_LEGACY_FILES = {"saved_model": "saved_model", "keras": "model.keras"}
# Aside copies of another host's process cannot be checked for liveness; they
# are considered abandoned after this many seconds.
_FOREIGN_STALE_SECONDS = 24 * 3600


class NotAnExportError(FileExistsError):
    """The target of an export exists and is not a kerascnn export."""


class ExportFailedError(RuntimeError):
    """An export failed after training; `fallback_path` holds the model."""

    def __init__(self, message, fallback_path=None):
        super().__init__(message)
        self.fallback_path = fallback_path


# -- what is an export -------------------------------------------------------


def read_marker(path):
    """The parsed `metadata.json` of `path` if it marks an export, or None."""
    metadata_path = os.path.join(path, "metadata.json")
    try:
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(metadata, dict):
        return None
    marker = metadata.get(MARKER_KEY)
    if (isinstance(marker, int) and not isinstance(marker, bool)
            and marker >= 1):
        return metadata
    if (metadata.get("format_version") == 1
            and metadata.get("files") == _LEGACY_FILES):
        return metadata  # written by kerascnn 0.1, before the marker
    return None


def export_problem(path):
    """Why `path` is not a replaceable export (a string), or None if it is."""
    if os.path.islink(path):
        return "it is a symbolic link"
    if not os.path.isdir(path):
        return "it is a file, not an export folder"
    try:
        entries = set(os.listdir(path))
    except OSError as error:
        return f"it cannot be listed ({error.strerror})"
    extra = sorted(entries - EXPORT_ENTRIES)
    if read_marker(path) is None:
        shown = ", ".join(sorted(entries)[:5]) or "nothing"
        return (f"it is not a kerascnn export (no metadata.json with the "
                f"{MARKER_KEY!r} marker; it holds {shown}"
                f"{', ...' if len(entries) > 5 else ''})")
    if extra:
        return ("it holds files that are not part of the export: "
                + ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else ""))
    return None


def is_export(path):
    """True if `path` is a kerascnn export folder that may be replaced."""
    return export_problem(os.fspath(path)) is None


# -- temporary and aside folders ---------------------------------------------


def _host_tag():
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def work_prefix(name, kind):
    """Prefix of a `kind` ("tmp" or "old") folder of this process."""
    return f".{name}.{kind}-{_host_tag()}-{os.getpid()}-"


def _work_folders(directory, name):
    """(kind, path, owner_alive) of every `.name.tmp-*` / `.name.old-*`."""
    pattern = re.compile(
        r"^\." + re.escape(name)
        + r"\.(tmp|old)-(?:([0-9a-f]{8})-([0-9]+)-)?([A-Za-z0-9_]+)$")
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    found = []
    for entry in entries:
        match = pattern.match(entry)
        if not match:
            continue
        kind, host, pid = match.group(1), match.group(2), match.group(3)
        path = os.path.join(directory, entry)
        found.append((kind, path, _owner_alive(path, host, pid)))
    return found


def _owner_alive(path, host, pid):
    if host is None:
        return False  # kerascnn 0.1 names carry no owner; that version is gone
    if host != _host_tag():
        try:
            age = time.time() - os.lstat(path).st_mtime
        except OSError:
            return False
        return age < _FOREIGN_STALE_SECONDS
    pid = int(pid)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _only_export_files(path):
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    try:
        return set(os.listdir(path)) <= EXPORT_ENTRIES
    except OSError:
        return False


def remove_export_tree(path):
    """Deletes an export folder, `metadata.json` (the marker) first.

    A deletion cut short by a kill thus never leaves a half-deleted folder
    that still looks like a complete export.
    """
    try:
        os.remove(os.path.join(path, "metadata.json"))
    except FileNotFoundError:
        pass
    shutil.rmtree(path)


def recover_export(directory, name):
    """Restores an export interrupted between its renames; cleans leftovers.

    If `directory/name` is missing and a `.name.old-*` copy of a process that
    no longer runs is a complete export, the newest such copy is renamed back
    to `name`. Then every `.name.tmp-*` and `.name.old-*` of a dead process
    that holds only export files is deleted (a complete export is under
    `name` by then). Folders of running processes are left alone.

    Returns the restored path, or None. Nothing happens if `directory` does
    not exist.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return None
    destination = os.path.join(directory, name)
    restored = None
    folders = _work_folders(directory, name)
    if not os.path.lexists(destination):
        candidates = [
            path for kind, path, alive in folders
            if kind == "old" and not alive and read_marker(path) is not None
            and os.path.isdir(os.path.join(path, "saved_model"))
            and _only_export_files(path)
        ]
        candidates.sort(key=lambda p: os.lstat(p).st_mtime, reverse=True)
        for candidate in candidates:
            try:
                os.rename(candidate, destination)
            except OSError:
                continue
            restored = candidate
            warnings.warn(
                f"Restored the export {destination!r} from {candidate!r}, "
                "the copy an interrupted export had set aside.",
                stacklevel=2)
            break
    if not os.path.lexists(destination):
        return None  # keep any aside copy: it may be the only one
    for kind, path, alive in _work_folders(directory, name):
        if alive or not _only_export_files(path):
            continue
        try:
            remove_export_tree(path)
        except OSError:
            pass
    return destination if restored else None


def find_aside_copy(path):
    """A complete `.name.old-*` export beside a missing `path`, or None."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    for kind, folder, alive in _work_folders(directory, name):
        if kind == "old" and not alive and read_marker(folder) is not None \
                and os.path.isdir(os.path.join(folder, "saved_model")):
            return folder
    return None


# -- writability -------------------------------------------------------------


def check_writable(path, name="export_dir"):
    """Checks that kerascnn can create and write the folder `path`.

    Runs before any training: if `path` exists it must be a folder in which a
    file can be created; if not, its nearest existing parent must be. A probe
    file is created and deleted (permission bits alone are not trusted: they
    say nothing about read-only file systems, and root ignores them).
    Nothing is left behind and `path` itself is not created.

    Args:
        path: The folder to check.
        name: The argument name the error message uses. Defaults to
            `"export_dir"`.

    Returns:
        `path` as a string.

    Raises:
        ArgumentError: naming `name` and `path`, if it cannot be written.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        _validation.fail(name, "a folder path", path)
    path = os.fspath(path)
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        _validation.fail(
            name, "a folder path (a file is in the way: "
            f"{probe!r})", path)
    try:
        handle, probe_file = tempfile.mkstemp(
            prefix=".kerascnn-write-check-", dir=probe)
        os.close(handle)
        os.remove(probe_file)
    except OSError as error:
        where = "" if probe == os.path.abspath(path) else (
            f"; it would be created in {probe!r}")
        raise _validation.ArgumentError(
            f"Argument `{name}` must be a folder kerascnn can write to "
            f"(checked before any work{where}: {error.strerror or error}). "
            f"Received: {name}={path!r}") from None
    return path


# -- fallback save -----------------------------------------------------------


def fallback_folders(directory=None):
    """Where `save_fallback` tries to write, in order."""
    folders = []
    if directory is not None:
        folders.append(os.fspath(directory))
    folders.append(os.path.join(os.getcwd(), "kerascnn_fallback"))
    folders.append(os.path.join(tempfile.gettempdir(), "kerascnn_fallback"))
    return folders


def save_fallback(model, name="model", directory=None):
    """Saves `model` as `<name>-<UTC time>.keras` in the first writable place.

    Tries `directory` (e.g. the export folder's parent), then
    `./kerascnn_fallback/`, then `<tempdir>/kerascnn_fallback/`; an existing
    file is never overwritten (a counter is appended).

    Args:
        model: The `keras.Model` to keep.
        name: Stem of the file name. Defaults to `"model"`.
        directory: First folder to try, or None. Defaults to `None`.

    Returns:
        The path of the `.keras` file, or None if no place could be written
        (the errors are then in the warning).
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)) or "model"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    errors = []
    for folder in fallback_folders(directory):
        try:
            os.makedirs(folder, exist_ok=True)
            for counter in range(1000):
                suffix = f"-{counter}" if counter else ""
                path = os.path.join(folder, f"{stem}-{stamp}{suffix}.keras")
                try:
                    # Reserve the name so that nothing existing is replaced.
                    os.close(os.open(
                        path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    break
                except FileExistsError:
                    continue
            else:
                raise FileExistsError(f"no free file name in {folder!r}")
            try:
                model.save(path)
            except BaseException:
                try:
                    os.remove(path)
                except OSError:
                    pass
                raise
            return path
        except Exception as error:  # try the next place
            errors.append(f"{folder}: {error}")
    warnings.warn("Could not save the model anywhere: " + "; ".join(errors),
                  stacklevel=2)
    return None
