"""`kerascnn quickstart` vs the 20-line plain-Keras script of issue 13.

Both run on the embedded mnist5k, each in its own subprocess (a fresh
interpreter: import and start-up time count, as for a user), seed by seed,
alternating which goes first so that a machine's load drifts onto both. For
each seed it records the held-out test accuracy and the wall time of the whole
process; it prints the accuracy mean and spread (min..max, std) of each and
the wall-time ratio quickstart / script measured in this run (the goal of
issue 13: quickstart >= 0.985 mean, every seed >= 0.982, ratio <= 1.0).

The quickstart's accuracy is the one it reports for its reloaded SavedModel
on its 500 held-out test images (10% stratified); the script's is
`model.evaluate` on its 1,000 held-out images (20% stratified). The
quickstart's wall time includes what the script does not do: the export,
its verification, reloading it, and the plots.

    python -m benchmarks.bench_quickstart [--seeds 3] [--quick]

`--quick`: 1 epoch each on 600 images (the quickstart's --quick): checks that
both sides run, no accuracy claim.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

from benchmarks import _common

NAME = "bench_quickstart"

# The plain-Keras peer, as issue 13 describes it: 4 conv layers with
# BatchNorm, dropout 0.5, light augmentation (rotation 0.05, translation
# 0.08, zoom 0.08), Adam 1e-3, batch 64, early stopping patience 5 with the
# best weights restored, 80/20 stratified split (early stopping on 10% of the
# training part). argv: seed, quick (0/1).
PEER_SCRIPT = r'''
import sys, keras, numpy as np
from sklearn.model_selection import train_test_split
from kerascnn.datasets import load_mnist5k
seed, quick = int(sys.argv[1]), sys.argv[2] == "1"
x, y = load_mnist5k()
if quick: x, y = x[:600], y[:600]
keras.utils.set_random_seed(seed)
x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
L = keras.layers
def conv(f): return [L.Conv2D(f, 3, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU()]
model = keras.Sequential([keras.Input((28, 28, 1)), L.RandomRotation(0.05), L.RandomTranslation(0.08, 0.08),
    L.RandomZoom(0.08), L.Rescaling(1 / 255), *conv(32), *conv(32), L.MaxPooling2D(), *conv(64), *conv(64),
    L.MaxPooling2D(), L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_tr, y_tr, batch_size=64, epochs=1 if quick else 50, validation_split=0.1, verbose=0,
          callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)])
print("test accuracy:", model.evaluate(x_te, y_te, verbose=0)[1])
'''

_PEER_ACCURACY = re.compile(r"^test accuracy: ([0-9.]+)$", re.M)
_OURS_ACCURACY = re.compile(
    r"^Reloaded export test accuracy: ([0-9.]+) on (\d+) held-out", re.M)
_OURS_EPOCHS = re.compile(r"^Epochs: (\d+)", re.M)


def _run(command, pattern, label, timeout):
    """Runs `command`; returns (accuracy, wall seconds, stdout)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    wall = time.perf_counter() - started
    match = pattern.search(out)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"{label} failed (exit {process.returncode}): "
                           f"{(err or out).strip()[-2000:]}")
    return float(match.group(1)), wall, out


def run_peer(seed, quick, timeout):
    accuracy, wall, _ = _run(
        [sys.executable, "-c", PEER_SCRIPT, str(seed), "1" if quick else "0"],
        _PEER_ACCURACY, "plain-Keras script", timeout)
    return {"accuracy": accuracy, "wall_s": wall}


def run_quickstart(seed, quick, timeout, work_dir):
    folder = os.path.join(work_dir, f"seed{seed}")
    command = [sys.executable, "-m", "kerascnn", "quickstart", "--seed",
               str(seed), "--output-dir", os.path.join(folder, "plots"),
               "--export-dir", folder, "--name", "qs", "--verbose", "0"]
    if quick:
        command.append("--quick")
    accuracy, wall, out = _run(command, _OURS_ACCURACY, "kerascnn quickstart",
                               timeout)
    epochs = _OURS_EPOCHS.search(out)
    return {"accuracy": accuracy, "wall_s": wall,
            "epochs": int(epochs.group(1)) if epochs else None}


def _spread(values):
    mean, std = _common.mean_std(values)
    return (f"{mean:.4f} (min {min(values):.4f}, max {max(values):.4f}, "
            f"std {std:.4f})")


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0],
                                 default_seeds=3)
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds each subprocess may take")
    args = _common.parse_args(parser, argv)
    seeds = list(range(args.seeds))
    runs = {"quickstart": [], "script": []}
    with tempfile.TemporaryDirectory(prefix="bench_quickstart_") as work:
        for index, seed in enumerate(seeds):
            order = ("script", "quickstart") if index % 2 == 0 else (
                "quickstart", "script")
            for side in order:
                if side == "script":
                    run = run_peer(seed, args.quick, args.timeout)
                else:
                    run = run_quickstart(seed, args.quick, args.timeout, work)
                run["seed"] = seed
                runs[side].append(run)
                print(f"seed {seed} {side}: accuracy {run['accuracy']:.4f}, "
                      f"wall {run['wall_s']:.1f} s", flush=True)
    ours = [r["accuracy"] for r in runs["quickstart"]]
    peer = [r["accuracy"] for r in runs["script"]]
    ours_wall = sum(r["wall_s"] for r in runs["quickstart"])
    peer_wall = sum(r["wall_s"] for r in runs["script"])
    ratio = ours_wall / peer_wall
    per_seed = [q["wall_s"] / p["wall_s"]
                for q, p in zip(runs["quickstart"], runs["script"])]
    results = {
        "runs": runs, "seeds": seeds, "quick": args.quick,
        "quickstart_accuracy": _common.mean_std(ours),
        "script_accuracy": _common.mean_std(peer),
        "ratios": {"quickstart: wall-time ratio quickstart / script": ratio},
        "per_seed_wall_ratio": per_seed,
        "goal_met": (not args.quick and min(ours) >= 0.982
                     and sum(ours) / len(ours) >= 0.985 and ratio <= 1.0),
        "environment": _common.environment(),
    }
    print(f"quickstart test accuracy: {_spread(ours)}")
    print(f"script test accuracy:     {_spread(peer)}")
    print(f"quickstart wall: {ours_wall:.1f} s, script wall: "
          f"{peer_wall:.1f} s (seeds {seeds})")
    print("quickstart: wall-time ratio quickstart / script: "
          f"{ratio:.3f} (per seed: "
          + ", ".join(f"{r:.2f}" for r in per_seed) + ")")
    if args.quick:
        print("(--quick: 1 epoch on 600 images, no accuracy claim)")
    results["json"] = _common.write_json(args.output_dir, NAME, results)
    return results


if __name__ == "__main__":
    main()
