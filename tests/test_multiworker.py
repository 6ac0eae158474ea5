"""Multi-worker training on loopback: two `kerascnn train` processes.

Each test starts two worker processes with a `TF_CONFIG` naming both on
free `127.0.0.1` ports, as two machines would be started (each in its own
working folder, with the same command). `strategy="auto"` (the default of
`fit` and `kerascnn train`) then trains with `MultiWorkerMirroredStrategy`.
Every process is killed by its PID in a `finally`.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from _support import free_ports

# Two TensorFlow processes per run (a kill test starts four): more than the
# suite's per-test limit on a busy 2-core machine.
pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(1200)]

WAIT_S = 420


def _train_command(epochs, extra=()):
    return [sys.executable, "-m", "kerascnn", "train", "--data", "digits",
            "--depth", "1", "--epochs", str(epochs), "--batch-size", "16",
            "--learning-rate", "0.003",
            "--seed", "42", "--verbose", "2", "--export", "digits_mw",
            "--plot-dir", "plots", *extra]


class Cluster:
    """Two worker processes started with one command; killed on exit."""

    def __init__(self, root):
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.folders = [root / f"worker{i}" for i in range(2)]
        for folder in self.folders:
            folder.mkdir(exist_ok=True)
        self.procs = []
        self.runs = 0

    def start(self, command):
        ports = free_ports(2)
        self.runs += 1
        self.procs = []
        for index, folder in enumerate(self.folders):
            config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                      "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(config),
                       TF_CPP_MIN_LOG_LEVEL="2")
            log = open(self.log_path(index), "w")
            try:
                self.procs.append(subprocess.Popen(
                    command, cwd=folder, env=env, stdout=log,
                    stderr=subprocess.STDOUT))
            finally:
                log.close()
        return self.procs

    def log_path(self, index, run=None):
        return self.logs / f"run{run or self.runs}-worker{index}.log"

    def log(self, index, run=None):
        return self.log_path(index, run).read_text(errors="replace")

    def wait(self, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        codes = []
        for index, proc in enumerate(self.procs):
            try:
                codes.append(proc.wait(max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {index} still running after {timeout} s:"
                            f"\n{self.log(index)[-3000:]}")
        return codes

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.kill()


def _digits_test_split():
    """The test split `kerascnn train --data digits --seed 42` holds out."""
    from kerascnn import datasets
    from kerascnn.data import split_dataset

    images, labels, _ = datasets.load("digits")
    split = split_dataset(images, labels, validation_split=0.1,
                          test_split=0.1, seed=42)
    return split.x_test, split.y_test


def _served_accuracy(export):
    import tensorflow as tf

    x_test, y_test = _digits_test_split()
    loaded = tf.saved_model.load(str(export / "saved_model"))
    probabilities = np.asarray(loaded.serve(tf.constant(x_test, tf.float32)))
    return float(np.mean(np.argmax(probabilities, axis=1) == y_test))


def _check_all_exited(cluster, codes):
    for index, code in enumerate(codes):
        assert code == 0, (f"worker {index} exited {code}:\n"
                           f"{cluster.log(index)[-4000:]}")


def test_two_workers_train_and_only_the_chief_writes(cluster):
    cluster.start(_train_command(epochs=6))
    codes = cluster.wait()
    _check_all_exited(cluster, codes)
    chief, worker = cluster.folders
    for index in range(2):
        assert "MultiWorkerMirroredStrategy: 2 workers, 2 replicas" in \
            cluster.log(index)
    export = chief / "saved_models" / "digits_mw"
    assert (export / "saved_model").is_dir()
    assert (chief / "plots").is_dir() and os.listdir(chief / "plots")
    # The other worker trained too, but wrote nothing under its folders.
    assert sorted(os.listdir(worker)) == []
    accuracy = _served_accuracy(export)
    assert accuracy >= 0.90, accuracy


def _backup_epoch(backup_dir):
    """The last finished epoch `BackupAndRestore` recorded, or -1."""
    for folder, _, files in os.walk(backup_dir):
        if "training_metadata.json" in files:
            try:
                with open(os.path.join(folder, "training_metadata.json")) as f:
                    return int(json.load(f)["epoch"])
            except (OSError, ValueError, KeyError):
                return -1
    return -1


def test_killed_worker_restarted_resumes_from_shared_backup(cluster):
    backup = cluster.root / "shared_backup"
    command = _train_command(epochs=6, extra=(
        "--backup-dir", str(backup), "--no-early-stopping"))
    chief_proc, worker_proc = cluster.start(command)
    deadline = time.monotonic() + WAIT_S
    while _backup_epoch(backup) < 2:
        if chief_proc.poll() is not None or worker_proc.poll() is not None:
            pytest.fail("a worker exited before the kill:\n"
                        + cluster.log(0)[-3000:] + cluster.log(1)[-3000:])
        if time.monotonic() > deadline:
            pytest.fail("no epoch was backed up:\n" + cluster.log(0)[-3000:])
        time.sleep(0.2)
    worker_proc.kill()          # the worker dies mid-training ...
    assert worker_proc.wait() != 0
    # ... and the chief's next collective fails (TensorFlow's health check);
    # a cluster manager restarts every worker. Stop it if it is still waiting.
    try:
        chief_proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        chief_proc.kill()
        chief_proc.wait()
    assert _backup_epoch(backup) >= 2
    chief, worker = cluster.folders
    assert not (chief / "saved_models" / "digits_mw").exists()

    cluster.start(command)      # the same command on both, as before
    codes = cluster.wait()
    _check_all_exited(cluster, codes)
    resumed = cluster.log(0)
    assert "Epoch 1/6" not in resumed, resumed[-3000:]
    assert "Epoch 6/6" in resumed
    export = chief / "saved_models" / "digits_mw"
    assert (export / "saved_model").is_dir()
    with open(export / "metadata.json") as handle:
        assert json.load(handle)["epochs"] == 6
    assert sorted(os.listdir(worker)) == []
