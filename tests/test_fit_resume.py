"""A training run killed mid-way resumes after its last finished epoch."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras
    from kerascnn.training import fit

    class KillAfterSecondEpoch(keras.callbacks.Callback):
        # Simulates a crash (no cleanup, no exception handling).
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1 and os.environ.get("KERASCNN_TEST_KILL") == "1":
                os._exit(17)

    class EpochLog(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    log = EpochLog()
    result = fit("digits", epochs=4, batch_size=32, seed=3,
                 early_stopping=False, backup_dir=sys.argv[1], verbose=0,
                 model_kwargs={"depth": 1, "filters": 16,
                               "convs_per_block": 1, "dense_units": 32,
                               "head": "flatten", "dropout": 0.0},
                 callbacks=[KillAfterSecondEpoch(), log])
    with open(sys.argv[2], "w") as handle:
        json.dump({"epochs_seen": log.epochs,
                   "initial_epoch": result.initial_epoch,
                   "epochs_run": result.epochs_run,
                   "history_loss": result.history["loss"],
                   "accuracy": result.test_metrics["accuracy"]}, handle)
""")


def _run(script, backup, out, kill):
    env = dict(os.environ, KERASCNN_TEST_KILL="1" if kill else "0",
               TF_CPP_MIN_LOG_LEVEL="2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(script), str(backup),
                           str(out)], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.subprocess
def test_killed_run_resumes_from_last_epoch(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    backup = tmp_path / "backup"
    out = tmp_path / "result.json"

    killed = _run(script, backup, out, kill=True)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert not out.exists()
    # Keras' checkpoint and our epoch journal survived the crash.
    assert (backup / "history.json").exists()
    journal = json.loads((backup / "history.json").read_text())
    assert sorted(journal) == ["0", "1"]

    resumed = _run(script, backup, out, kill=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(out.read_text())
    # The second process trained only epochs 2 and 3 (0-based) ...
    assert result["epochs_seen"] == [2, 3]
    assert result["initial_epoch"] == 2 and result["epochs_run"] == 2
    # ... and reports all four, the first two from before the crash.
    assert len(result["history_loss"]) == 4
    assert result["history_loss"][:2] == pytest.approx(
        [journal["0"]["loss"], journal["1"]["loss"]])
    assert result["history_loss"][3] < result["history_loss"][0]
    assert result["accuracy"] > 0.8  # training went on after the resume
    # A finished run cleans up its backup.
    assert not (backup / "history.json").exists()
    assert not (backup / "state").exists()
