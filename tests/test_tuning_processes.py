"""kerascnn.tuning across processes: kill and resume, chief + two workers, CLI."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = {"depths": [1], "filter_sizes": [3], "strides": [1, 2],
         "paddings": ["same"], "filters": [4], "normalizations": ["none"],
         "dropouts": [0.0, 0.5], "learning_rate": [3e-3, 3e-2]}


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["CUDA_VISIBLE_DEVICES"] = ""
    for key in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT",
                "KERASTUNER_TUNER_ID"):
        env.pop(key, None)
    env.update(extra)
    return env


RESUME_SCRIPT = textwrap.dedent("""
    import os, sys
    import keras
    from kerascnn.tuning import search

    directory, log = sys.argv[1], sys.argv[2]

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            with open(log, "a") as handle:
                handle.write("begin\\n")
            with open(log) as handle:
                started = len(handle.read().split())
            Probe.started = started

        def on_epoch_end(self, epoch, logs=None):
            # First run only: die in the middle of the second trial.
            if os.environ.get("KILL_IN_TRIAL_2") and Probe.started == 2:
                os._exit(17)

    result = search("digits", tuner="random", space={space}, max_trials=3,
                    epochs=2, batch_size=32, directory=directory,
                    strategy=None, verbose=0, callbacks=[Probe()])
    print("RESULT", [(t["trial_id"], t["status"]) for t in result.trials])
    print("RAN", result.ran_trials)
""")


@pytest.mark.subprocess
def test_killed_search_resumes_losing_only_the_trial_in_flight(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT.replace("{space}", repr(SPACE)))
    log = tmp_path / "starts.log"
    directory = tmp_path / "kt"
    killed = subprocess.run(
        [sys.executable, str(script), str(directory), str(log)],
        env=_env(KILL_IN_TRIAL_2="1"), capture_output=True, text=True,
        timeout=400)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert log.read_text().split() == ["begin", "begin"]
    trial0 = json.loads((directory / "random" / "trial_0" /
                         "trial.json").read_text())
    assert trial0["status"] == "COMPLETED"

    resumed = subprocess.run(
        [sys.executable, str(script), str(directory), str(log)],
        env=_env(), capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Trial 0 was kept; only the trial in flight (1) ran again, then 2.
    assert "RAN ['1', '2']" in resumed.stdout
    assert ("RESULT [('0', 'COMPLETED'), ('1', 'COMPLETED'), "
            "('2', 'COMPLETED')]") in resumed.stdout
    assert log.read_text().split() == ["begin"] * 4
    trial0_after = json.loads((directory / "random" / "trial_0" /
                               "trial.json").read_text())
    assert trial0_after["score"] == trial0["score"]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.subprocess
def test_chief_and_two_workers_run_every_trial_once(tmp_path):
    port = _free_port()
    directory = tmp_path / "kt"
    common = [sys.executable, "-m", "kerascnn", "tune", "--data", "digits",
              "--tuner", "random", "--max-trials", "4", "--epochs", "1",
              "--batch-size", "32", "--space", json.dumps(SPACE),
              "--directory", str(directory), "--oracle-address",
              f"127.0.0.1:{port}", "--quiet"]
    processes = []
    try:
        chief = subprocess.Popen(
            common + ["--distributed", "chief"], env=_env(), cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(chief)
        time.sleep(2)
        for worker_id in ("tuner0", "tuner1"):
            processes.append(subprocess.Popen(
                common + ["--distributed", "worker", "--tuner-id", worker_id],
                env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate(timeout=500)[0] for p in processes]
        codes = [p.returncode for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    assert codes == [0, 0, 0], "\n-----\n".join(o[-3000:] for o in outputs)

    project = directory / "random"
    ran = []
    for worker_id in ("tuner0", "tuner1"):
        report = json.loads((project / f"worker_{worker_id}.json").read_text())
        assert report["tuner_id"] == worker_id
        ran += [t["trial_id"] for t in report["ran_trials"]]
    # Every trial ran exactly once, spread over the workers.
    assert sorted(ran) == ["0", "1", "2", "3"]
    # The chief holds every result.
    trials = json.loads((project / "trials.json").read_text())
    assert [t["trial_id"] for t in trials] == ["0", "1", "2", "3"]
    assert all(t["status"] == "COMPLETED" and t["score"] is not None
               for t in trials)
    best = json.loads((project / "best.json").read_text())
    assert best["score"] == max(t["score"] for t in trials)
    assert "Best configuration:" in outputs[0]


def test_cli_tune_exports_a_verified_saved_model(tmp_path, capsys):
    from kerascnn.cli import main

    code = main(["tune", "--data", "digits", "--tuner", "random",
                 "--max-trials", "1", "--epochs", "1", "--space",
                 json.dumps(dict(SPACE, strides=[1], dropouts=[0.0])),
                 "--directory", str(tmp_path / "kt"), "--export", "digits_cnn",
                 "--export-dir", str(tmp_path / "exports"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Best configuration: depth=1, filter_size=3, stride=1" in out
    assert "Test metrics: accuracy=" in out
    assert os.path.isdir(tmp_path / "exports" / "digits_cnn" / "saved_model")
    exported = out.split("SavedModel test accuracy ")[1].split()[0]
    tested = out.split("Test metrics: accuracy=")[1].split(",")[0]
    assert float(exported) == pytest.approx(float(tested), abs=1e-4)


def test_cli_choices_match_the_library():
    from kerascnn import tuning
    from kerascnn.cli import tune

    assert tune.TUNERS == tuning.TUNERS
    assert tune.SCHEDULES == tuning.SCHEDULES


def test_cli_rejects_bad_input_before_searching(tmp_path, capsys):
    from kerascnn.cli import main

    code = main(["tune", "--data", "digits", "--max-trials", "0",
                 "--directory", str(tmp_path / "kt")])
    assert code == 2
    assert "Received: max_trials=0" in capsys.readouterr().err
    code = main(["tune", "--data", "digits", "--export", "../x",
                 "--directory", str(tmp_path / "kt")])
    assert code == 2
    assert "Received: export='../x'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "kt")
