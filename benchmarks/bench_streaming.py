"""Streaming a class folder: peak memory and wall time of `kerascnn train`.

`python -m benchmarks.bench_streaming [--quick] [--output-dir D]
[--data-dir D] [--keep-data]` (issue 9, item 3).

It writes two folders of RGB PNGs (96x96; 6,000 and 24,000 images, ten
classes) generated from the embedded mnist5k digits, upsampled and
colourised (random foreground and background colours and offsets per
image), with a process pool. Then, each command as its own child process:

1. `kerascnn train --data FOLDER --epochs 1` on both folders: the peak
   resident memory of the child (its `VmHWM`, polled). Target:
   the 4x larger folder peaks within 1.2x of the smaller one (the data is
   streamed, not loaded).
2. The wall time of that command on the larger folder against a plain
   Keras script (`peer` below: `keras.utils.image_dataset_from_directory`,
   80/20 split, the network `build_cnn` builds written in plain Keras
   layers, one epoch with validation). Target: within 1.5x.

Ratios are printed as a table (lines "... ratio ...: value" for
`python -m benchmarks`) and written to `<output-dir>/bench_streaming.json`.
`--quick` uses tiny folders (200 and 800 images of 32x32).
"""

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/bench_streaming.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from benchmarks import _common  # noqa: E402

NAME = "bench_streaming"
MEMORY_TARGET = 1.2
TIME_TARGET = 1.5
FULL = {"sizes": (6000, 24000), "image_size": 96}
QUICK = {"sizes": (200, 800), "image_size": 32}

# The plain-Keras peer, run as `python -c PEER FOLDER IMAGE_SIZE SEED`.
PEER = r'''
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, tensorflow as tf
folder, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(seed)
train, val = keras.utils.image_dataset_from_directory(
    folder, validation_split=0.2, subset="both", seed=seed,
    image_size=(size, size), batch_size=64)
classes = len(train.class_names)
normalizer = keras.layers.Normalization(axis=-1)
normalizer.adapt(train.take(32).map(lambda x, y: x))
inputs = keras.Input((size, size, 3))
x = normalizer(inputs)
# fit's default network (kerascnn.training.defaults.MODEL): blocks of two
# conv-BN-ReLU, the second striding 2, 3 blocks at this size; the 12x12x128
# map is too large to flatten (head "auto"), so global average pooling.
for block in range(3):
    for conv in range(2):
        x = keras.layers.Conv2D(32 * 2 ** block, 3, padding="same",
                                strides=2 if conv == 1 else 1,
                                use_bias=False,
                                kernel_initializer="he_normal")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
x = keras.layers.Dropout(0.5)(x)
outputs = keras.layers.Dense(classes, activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(train.prefetch(tf.data.AUTOTUNE),
                    validation_data=val.prefetch(tf.data.AUTOTUNE),
                    epochs=1, verbose=2)
print("peer val_accuracy", history.history["val_accuracy"][-1])
'''


# -- data ------------------------------------------------------------------------


def _write_chunk(task):
    """Writes one chunk of images (run in a worker process)."""
    from PIL import Image

    root, size, start, digits, labels, seed = task
    rng = np.random.default_rng(seed)
    for offset, (digit, label) in enumerate(zip(digits, labels)):
        scale = max(1, size // 28)
        big = np.kron(digit, np.ones((scale, scale), np.uint8))
        canvas = np.zeros((size, size), np.float32)
        room = size - big.shape[0]
        top, left = rng.integers(0, room + 1, 2) if room > 0 else (0, 0)
        canvas[top:top + big.shape[0], left:left + big.shape[1]] = big
        alpha = (canvas / 255.0)[..., None]
        fg = rng.integers(128, 256, 3)
        bg = rng.integers(0, 96, 3)
        image = (alpha * fg + (1 - alpha) * bg).astype(np.uint8)
        path = os.path.join(root, str(label), f"{start + offset:06d}.png")
        Image.fromarray(image).save(path, compress_level=1)
    return len(digits)


def make_folder(root, count, size, seed=0, processes=None):
    """`count` RGB PNGs of `size`x`size` in `root/<digit>/`, from mnist5k."""
    from kerascnn import datasets

    images, labels = datasets.load_mnist5k()
    if size < 28:
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(i[..., 0]).resize(
            (size, size), Image.Resampling.BILINEAR)) for i in images])[
                ..., None]
    rng = np.random.default_rng(seed)
    # Every digit equally often (a remainder goes to the first digits);
    # beyond 500 per digit the digits repeat in new colours and offsets.
    index = np.concatenate([np.resize(rng.permutation(np.flatnonzero(
        labels == digit)), count // 10 + (digit < count % 10))
        for digit in range(10)])
    index = rng.permutation(index)
    for label in range(10):
        os.makedirs(os.path.join(root, str(label)), exist_ok=True)
    chunk = 500
    tasks = [(root, size, start, images[index[start:start + chunk], ..., 0],
              labels[index[start:start + chunk]], seed + start)
             for start in range(0, count, chunk)]
    processes = processes or max(1, min(8, os.cpu_count() or 1))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        written = sum(pool.map(_write_chunk, tasks))
    return written


# -- measuring -------------------------------------------------------------------


def run_child(command, log_path, env=None, timeout=None):
    """Runs `command`; returns `(wall seconds, peak RSS bytes, exit code)`.

    The peak is the child's own high-water mark (`VmHWM` of
    `/proc/<pid>/status`, polled every 20 ms; it starts afresh at `exec`),
    so the memory of this process does not count. Without `/proc`, the
    child's `ru_maxrss` from `os.wait4` (which, after `fork`, starts at
    this process's resident size).
    """
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
        high_water = 0
        try:
            deadline = None if timeout is None else start + timeout
            while True:
                high_water = max(high_water, _high_water(process.pid))
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    process.kill()
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.02)
        finally:
            if process.returncode is None:
                try:
                    process.kill()
                except ProcessLookupError:
                    pass
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
    # Linux reports ru_maxrss in KiB.
    peak = high_water or usage.ru_maxrss * 1024
    return wall, peak, process.returncode


def _high_water(pid):
    """`VmHWM` of a running process in bytes (0 when unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tail(path, lines=15):
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


def train_command(folder, export_dir, seed):
    """The command measured: `kerascnn train --data FOLDER --epochs 1`."""
    return [sys.executable, "-m", "kerascnn", "train", "--data", folder,
            "--epochs", "1", "--export", "bench_streaming", "--export-dir",
            export_dir, "--seed", str(seed), "--verbose", "2"]


def measure(args, work):
    config = dict(QUICK if args.quick else FULL)
    if args.sizes is not None:
        config["sizes"] = args.sizes
    if args.image_size is not None:
        config["image_size"] = args.image_size
    size = config["image_size"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    folders, generation = {}, {}
    for count in config["sizes"]:
        folder = os.path.join(work, f"rgb{size}_{count}")
        with _common.Stopwatch() as watch:
            if not (os.path.isdir(folder) and sum(
                    len(files) for _, _, files in os.walk(folder)) == count):
                shutil.rmtree(folder, ignore_errors=True)
                make_folder(folder, count, size, seed=args.seed)
        folders[count], generation[count] = folder, watch.seconds
        print(f"folder of {count} PNGs {size}x{size}: {watch.seconds:.1f} s",
              flush=True)
    runs = {}
    for count, folder in folders.items():
        export_dir = os.path.join(work, f"exports_{count}")
        shutil.rmtree(export_dir, ignore_errors=True)
        log = os.path.join(work, f"kerascnn_{count}.log")
        wall, peak, code = run_child(train_command(folder, export_dir,
                                                   args.seed), log, env)
        if code != 0:
            raise RuntimeError(f"kerascnn train on {folder} exited with "
                               f"{code}:\n{_tail(log)}")
        runs[f"kerascnn_{count}"] = {"wall_s": wall, "peak_rss_bytes": peak}
        print(f"kerascnn train, {count} images: {wall:.1f} s, peak "
              f"{peak / 2 ** 20:.0f} MiB", flush=True)
    largest = max(folders)
    from kerascnn.datasets import files

    with _common.Stopwatch() as watch:
        paths, _, _ = files.list_directory(folders[largest])
        files.scan_files(paths)
    runs["prescan"] = {"files": len(paths), "wall_s": watch.seconds}
    print(f"pre-scan (list + Pillow verify) of {len(paths)} files: "
          f"{watch.seconds:.2f} s", flush=True)
    log = os.path.join(work, "peer.log")
    wall, peak, code = run_child([sys.executable, "-c", PEER,
                                  folders[largest], str(size),
                                  str(args.seed)], log, env)
    if code != 0:
        raise RuntimeError(f"the plain-Keras peer exited with {code}:\n"
                           f"{_tail(log)}")
    runs[f"keras_{largest}"] = {"wall_s": wall, "peak_rss_bytes": peak}
    print(f"plain Keras, {largest} images: {wall:.1f} s, peak "
          f"{peak / 2 ** 20:.0f} MiB", flush=True)
    return config, generation, runs


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder for the generated images (default: a "
                             "temporary folder, removed afterwards)")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the generated folders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default=None,
                        help="SMALL,LARGE image counts (default 6000,24000; "
                             "200,800 with --quick)")
    parser.add_argument("--image-size", default=None,
                        help="side of the square PNGs (default 96; 32 with "
                             "--quick)")
    args = _common.parse_args(parser, argv)
    if args.sizes is not None:
        parts = str(args.sizes).split(",")
        if len(parts) != 2:
            from kerascnn import _validation

            _validation.fail("sizes", "two image counts SMALL,LARGE",
                             args.sizes)
        args.sizes = tuple(_common.parse_int("sizes", p, 20) for p in parts)
    if args.image_size is not None:
        args.image_size = _common.parse_int("image_size", args.image_size, 8)
    work = args.data_dir or tempfile.mkdtemp(prefix="kerascnn_streaming_")
    os.makedirs(work, exist_ok=True)
    try:
        config, generation, runs = measure(args, work)
        config["sizes"] = tuple(config["sizes"])
    finally:
        if not args.keep_data and args.data_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    small, large = config["sizes"]
    memory = (runs[f"kerascnn_{large}"]["peak_rss_bytes"]
              / runs[f"kerascnn_{small}"]["peak_rss_bytes"])
    wall = runs[f"kerascnn_{large}"]["wall_s"] / runs[f"keras_{large}"][
        "wall_s"]
    scan = runs.pop("prescan")
    ratios = {
        f"streaming: peak memory ratio {large} / {small} images": memory,
        f"streaming: wall time ratio kerascnn / keras ({large} images)": wall,
    }
    scan_share = scan["wall_s"] / runs[f"kerascnn_{large}"]["wall_s"]
    meets = {"memory": memory <= MEMORY_TARGET, "time": wall <= TIME_TARGET}
    rows = [[name, f"{run['wall_s']:.1f}",
             f"{run['peak_rss_bytes'] / 2 ** 20:.0f}"]
            for name, run in runs.items()]
    print(_common.format_table(
        ["run", "wall s", "peak RSS MiB"], rows,
        title=f"Streaming a folder ({small} and {large} RGB PNGs of "
              f"{config['image_size']}x{config['image_size']})"))
    for (name, value), target in zip(ratios.items(),
                                     (MEMORY_TARGET, TIME_TARGET)):
        print(f"{name}: {value:.3f} (target <= {target})")
    print(f"pre-scan of {scan['files']} files: {scan['wall_s']:.2f} s, "
          f"{100 * scan_share:.1f} % of the kerascnn train run")
    results = {"quick": args.quick, "config": config,
               "generation_s": generation, "runs": runs, "ratios": ratios,
               "prescan": dict(scan, share_of_train_run=scan_share),
               "targets": {"memory": MEMORY_TARGET, "time": TIME_TARGET},
               "meets_target": meets,
               "command": " ".join(train_command("FOLDER", "EXPORT_DIR",
                                                 args.seed)[1:])}
    path = _common.write_json(args.output_dir, NAME, results)
    print(f"wrote {path}")
    results["json"] = path
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
