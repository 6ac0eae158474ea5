"""Fault injection for kerascnn.export: nothing is lost, whatever happens.

Each case reproduces a fault of issue 12 first (a folder that is not an
export at the target, a kill at each step of the export, a crash between the
two renames, a read-only folder, a failure after training) and then checks
what is promised in docs/reliability.md.

A kill is simulated in two ways. In-process, `_fault_point` (called at each
step of `export_model`) copies the export directory at that instant -- the
exact state a kill would leave on disk -- renaming the work folders to a
process id that has exited, then raises. One real kill (`os._exit` in a
subprocess, between the renames) checks that the copy method is faithful.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import types
import warnings

import keras
import numpy as np
import pytest

from kerascnn import export
from kerascnn.export import safety
from kerascnn.export import saved_model as saved_model_module
from kerascnn.export import export_model, load_export
from kerascnn.models import build_cnn

INPUT_SHAPE = (8, 8, 1)
STEPS = ("tmp_created", "saved_model_written", "keras_written", "verifying",
         "verified", "metadata_written", "old_aside", "renamed", "done")


def _model(filters=2):
    return build_cnn(INPUT_SHAPE, 3, depth=1, filters=filters, dense_units=4,
                     normalization="none")


def _images(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n,) + INPUT_SHAPE).astype("float32")


def _tree_digest(path):
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class _Killed(Exception):
    """Raised by the fault hook after the on-disk state was copied."""


@pytest.fixture(scope="module")
def old_export(tmp_path_factory):
    """One export made once; tests copy it (exports take seconds)."""
    root = tmp_path_factory.mktemp("old")
    model = _model(filters=2)
    path = export_model(model, "m", directory=root, sample=_images(),
                        class_names=["a", "b", "c"])
    return path


@pytest.fixture
def exports(tmp_path, old_export):
    directory = tmp_path / "exports"
    directory.mkdir()
    shutil.copytree(old_export, directory / "m")
    return directory


# -- a folder that is not an export is never replaced (cases 1, 2) -----------


def _forbid_work(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("work started before the target check")

    monkeypatch.setattr(saved_model_module, "_write_saved_model",
                        must_not_run)


@pytest.mark.parametrize("overwrite", [False, True])
def test_photo_folder_is_never_replaced(tmp_path, monkeypatch, overwrite):
    # Reproduces case 2: `--data photos --export photos --export-dir .
    # --overwrite` deleted the training images.
    photos = tmp_path / "photos"
    (photos / "cats").mkdir(parents=True)
    (photos / "cats" / "1.png").write_bytes(b"not really a png")
    before = _tree_digest(photos)
    _forbid_work(monkeypatch)
    with pytest.raises(export.NotAnExportError,
                       match="photos.*not a kerascnn export.*cats"):
        export_model(_model(), "photos", directory=tmp_path,
                     overwrite=overwrite)
    assert _tree_digest(photos) == before
    assert sorted(os.listdir(tmp_path)) == ["photos"]


def test_metadata_without_marker_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"mine": 1}))
    _forbid_work(monkeypatch)
    with pytest.raises(FileExistsError, match="no metadata.json with the "
                       "'kerascnn_export' marker"):
        export_model(_model(), "m", directory=tmp_path, overwrite=True)
    assert json.loads((folder / "metadata.json").read_text()) == {"mine": 1}


def test_user_file_inside_an_export_is_kept(exports, monkeypatch):
    # Reproduces case 1: a user file inside saved_models/NAME was deleted.
    note = exports / "m" / "notes.txt"
    note.write_text("results of the meeting")
    before = _tree_digest(exports / "m")
    _forbid_work(monkeypatch)
    with pytest.raises(export.NotAnExportError, match="notes.txt"):
        export_model(_model(), "m", directory=exports, overwrite=True)
    assert _tree_digest(exports / "m") == before


def test_marker_is_written_and_recognised(exports):
    metadata = json.loads((exports / "m" / "metadata.json").read_text())
    assert metadata["kerascnn_export"] == 1
    assert metadata["format_version"] == 1
    assert export.is_export(exports / "m")
    assert not export.is_export(exports)
    with pytest.raises(ValueError, match="kerascnn_export"):
        export_model(_model(), "n", directory=exports,
                     metadata={"kerascnn_export": 2})


def test_legacy_export_and_empty_folder_are_replaced(exports):
    # A kerascnn 0.1 export has no marker but its own layout.
    metadata_path = exports / "m" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["kerascnn_export"]
    metadata_path.write_text(json.dumps(metadata))
    assert export.is_export(exports / "m")
    (exports / "empty").mkdir()
    images = _images()
    new = _model(filters=3)
    for name in ("m", "empty"):
        export_model(new, name, directory=exports, overwrite=True,
                     sample=images)
        np.testing.assert_allclose(
            load_export(exports / name).serve(images),
            new.predict(images, verbose=0), atol=1e-5)
    assert sorted(os.listdir(exports)) == ["empty", "m"]


def test_symlink_target_is_refused(exports, tmp_path):
    os.symlink(exports / "m", exports / "link")
    with pytest.raises(export.NotAnExportError, match="symbolic link"):
        export_model(_model(), "link", directory=exports, overwrite=True)
    assert export.is_export(exports / "m")


# -- a kill at each step (case 3) --------------------------------------------


def _snapshot_hook(directory, snapshot, at_step, pid):
    def hook(step):
        if step != at_step:
            return
        shutil.copytree(directory, snapshot, symlinks=True)
        for entry in os.listdir(snapshot):
            renamed = re.sub(r"-[0-9]+-([A-Za-z0-9_]+)$", rf"-{pid}-\1",
                             entry)
            if renamed != entry:
                os.rename(os.path.join(snapshot, entry),
                          os.path.join(snapshot, renamed))
        raise _Killed(step)
    return hook


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_then_recovery(exports, tmp_path, monkeypatch,
                                         step):
    images = _images()
    old_digest = _tree_digest(exports / "m")
    old_outputs = load_export(exports / "m").serve(images)
    new = _model(filters=3)
    new_outputs = new.predict(images, verbose=0)
    snapshot = tmp_path / "after_kill"
    monkeypatch.setattr(
        saved_model_module, "_fault_point",
        _snapshot_hook(str(exports), str(snapshot), step, _dead_pid()))
    with pytest.raises(_Killed):
        export_model(new, "m", directory=exports, overwrite=True,
                     sample=images)
    monkeypatch.undo()

    # A handled failure at this step: the old export is untouched (or the new
    # one complete, once it is renamed in) and nothing is left beside it.
    assert os.listdir(exports) == ["m"]
    replaced = step in ("renamed", "done")
    if not replaced:
        assert _tree_digest(exports / "m") == old_digest

    # The state a kill leaves: a complete export is reachable under the name
    # or as the aside copy.
    left = sorted(os.listdir(snapshot))
    if step == "old_aside":
        assert "m" not in left and any(e.startswith(".m.old-") for e in left)
    else:
        assert "m" in left

    # The next load restores it, whichever export it is, and is complete.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_export(snapshot / "m")
    expected = new_outputs if replaced else old_outputs
    np.testing.assert_allclose(loaded.serve(images), expected, atol=1e-5)
    # The next export call cleans the stale temporary and aside folders.
    export.check_export_target("m", snapshot, overwrite=True)
    assert os.listdir(snapshot) == ["m"]


@pytest.mark.subprocess
def test_real_kill_between_renames(exports, tmp_path):
    """`os._exit` between the renames in a real process, then recovery."""
    images = _images()
    old_outputs = load_export(exports / "m").serve(images)
    script = f"""
import os
import numpy as np
from kerascnn.export import export_model
from kerascnn.export import saved_model
from kerascnn.models import build_cnn

def die(step):
    if step == "old_aside":
        os._exit(9)

saved_model._fault_point = die
model = build_cnn({INPUT_SHAPE!r}, 3, depth=1, filters=3, dense_units=4,
                  normalization="none")
export_model(model, "m", directory={str(exports)!r}, overwrite=True)
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        assert process.wait(timeout=300) == 9
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    left = sorted(os.listdir(exports))
    # Reproduced: no `m`, only hidden folders.
    assert "m" not in left
    assert len([e for e in left if e.startswith(".m.old-")]) == 1
    assert len([e for e in left if e.startswith(".m.tmp-")]) == 1
    with pytest.warns(UserWarning, match="Restored the export"):
        restored = load_export(exports / "m")
    np.testing.assert_allclose(restored.serve(images), old_outputs,
                               atol=1e-5)
    export.check_export_target("m", exports, overwrite=True)
    assert os.listdir(exports) == ["m"]


def test_live_process_folders_are_left_alone(exports):
    # A `.m.tmp-*` of a running export (this process) is not deleted.
    busy = exports / (safety.work_prefix("m", "tmp") + "abc")
    busy.mkdir()
    export.check_export_target("m", exports, overwrite=True)
    assert busy.exists()


def test_aside_copy_with_user_files_is_not_deleted(exports):
    stray = exports / f".m.old-{_dead_pid():08x}"  # a kerascnn 0.1 name
    stray.mkdir()
    (stray / "x.txt").write_text("x")
    odd = exports / (f".m.tmp-{safety._host_tag()}-{_dead_pid()}-abc")
    odd.mkdir()
    (odd / "user.txt").write_text("keep")
    export.check_export_target("m", exports, overwrite=True)
    assert (stray / "x.txt").exists() and (odd / "user.txt").exists()


# -- read-only folders (case 9) ----------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder no file can be created in (root ignores permission bits,
    so as root a folder of the read-only sysfs is used)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    try:
        probe = folder / "probe"
        probe.write_text("x")
        probe.unlink()
        writable = True
    except OSError:
        writable = False
    try:
        if not writable:
            yield str(folder)
        elif os.path.isdir("/sys") and _cannot_create_in("/sys"):
            yield "/sys"
        else:
            pytest.skip("no read-only folder available")
    finally:
        os.chmod(folder, 0o755)


def _cannot_create_in(folder):
    try:
        handle = os.open(os.path.join(folder, ".kerascnn-probe"),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError:
        return True
    os.close(handle)
    os.remove(os.path.join(folder, ".kerascnn-probe"))
    return False


def test_check_writable(read_only_dir, tmp_path):
    with pytest.raises(ValueError, match=r"Argument `export_dir` must be a "
                       r"folder kerascnn can write to.*Received: "
                       r"export_dir='" + re.escape(read_only_dir)):
        export.check_writable(read_only_dir)
    nested = os.path.join(read_only_dir, "a", "b")
    with pytest.raises(ValueError, match="it would be created in"):
        export.check_writable(nested, name="plot_dir")
    assert export.check_writable(tmp_path / "new" / "x") == str(
        tmp_path / "new" / "x")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="a file is in the way"):
        export.check_writable(tmp_path / "file" / "sub")


def test_export_to_read_only_folder_fails_before_work(read_only_dir,
                                                      monkeypatch):
    _forbid_work(monkeypatch)
    with pytest.raises(ValueError, match="Received: directory="):
        export_model(_model(), "m", directory=os.path.join(read_only_dir,
                                                           "exports"))


# -- a failure after training keeps the model ---------------------------------


def test_save_fallback_never_overwrites(tmp_path, read_only_dir,
                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _model()
    first = export.save_fallback(model, "run", directory=read_only_dir)
    assert os.path.dirname(first) == str(tmp_path / "kerascnn_fallback")
    second = export.save_fallback(model, "run", directory=read_only_dir)
    assert second != first and os.path.isfile(first)
    images = _images()
    np.testing.assert_allclose(
        keras.saving.load_model(second).predict(images, verbose=0),
        model.predict(images, verbose=0), atol=1e-6)
    beside = export.save_fallback(model, "run", directory=tmp_path)
    assert os.path.dirname(beside) == str(tmp_path)


def test_cli_export_failure_saves_the_model(tmp_path, monkeypatch):
    from kerascnn.cli import _common

    monkeypatch.chdir(tmp_path)
    model = _model()
    result = types.SimpleNamespace(
        model=model, test_metrics={"accuracy": 0.5, "loss": 1.0},
        splits={"train": 4}, normalization="none", learning_rate=1e-3,
        schedule=None, initial_epoch=0, epochs_run=1,
        class_names=["a", "b", "c"])

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(saved_model_module, "_write_saved_model", disk_full)
    with pytest.raises(export.ExportFailedError,
                       match="No space left.*saved to") as info:
        _common.export_result(result, "m", tmp_path / "exports", False,
                              data_name="x")
    path = info.value.fallback_path
    assert path in str(info.value) and path.endswith(".keras")
    images = _images()
    np.testing.assert_allclose(
        keras.saving.load_model(path).predict(images, verbose=0),
        model.predict(images, verbose=0), atol=1e-6)
    assert not os.path.exists(tmp_path / "exports" / "m")


def test_cli_target_checks(tmp_path, read_only_dir):
    from kerascnn.cli import _common

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a kerascnn export"):
        _common.check_export_target("photos", tmp_path, True)
    with pytest.raises(ValueError, match="Received: export_dir="):
        _common.check_export_target("m", read_only_dir, False)
    assert _common.check_export_target("m", tmp_path / "new", False) == str(
        tmp_path / "new" / "m")


@pytest.mark.parametrize("command", ["train", "quickstart"])
def test_cli_refuses_photo_folder_before_training(tmp_path, capsys,
                                                  command, monkeypatch):
    # Case 2 end to end: `--export photos --export-dir . --overwrite`.
    from kerascnn.cli import main

    photos = tmp_path / "photos"
    for label in ("cats", "dogs"):
        (photos / label).mkdir(parents=True)
        Image = pytest.importorskip("PIL.Image")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(
            photos / label / "1.png")
    before = _tree_digest(photos)
    monkeypatch.chdir(tmp_path)

    def must_not_train(*args, **kwargs):
        raise AssertionError("training started before the export check")

    import kerascnn.training

    monkeypatch.setattr(kerascnn.training, "fit", must_not_train)
    argv = [command, "--export", "photos", "--export-dir", ".",
            "--overwrite"]
    if command == "train":
        argv += ["--data", "photos"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a kerascnn export" in err
    assert _tree_digest(photos) == before
