"""GPU benchmark: float32, mixed precision and XLA; MirroredStrategy scaling; memory.

`python -m benchmarks gpu` (or `python -m benchmarks.bench_gpu`), unchanged on
any machine:

1. Training throughput (images/s, synthetic data, `model.fit` on a repeated
   batch after a warm-up) of two models in four settings: float32,
   `mixed_float16`, float32 + XLA (`jit_compile=True`), `mixed_float16` + XLA.
   The models: the quickstart's network (`kerascnn.models.build_cnn` with its
   defaults on 28x28x1, batch 256) and `keras.applications.MobileNetV2`
   (`weights=None`, 224x224x3, batch 128; `--backbone resnet50` for ResNet50).
   The precision is set through `kerascnn.core.distribute.precision_scope`,
   exactly as `fit(precision=...)` does. Ratios: each setting's images/s over
   float32's, measured in the same run.
2. `tf.distribute.MirroredStrategy` over 1, 2, ..., N visible GPUs (build_cnn,
   float32, 256 images per replica): images/s and the scaling efficiency
   `images/s(k) / (k * images/s(1))`.
3. `kerascnn.utils.estimate_memory` against the peak GPU memory TensorFlow
   reports (`tf.config.experimental.get_memory_info("GPU:0")["peak"]`, after
   `reset_memory_stats`) for a float32 training of each model; the estimate
   is a documented lower bound, so a ratio below 1 is expected.

Without a GPU it says so, measures nothing, writes nothing and exits 0
(nothing is ever estimated in place of a measurement). `--quick` runs every code path with
tiny sizes (the backbone in float32 only), on the CPU when there is no GPU:
a smoke test whose figures say nothing about a GPU. Writes `bench_gpu.json`
and `bench_gpu.png`.
"""

import statistics

import numpy as np

from benchmarks import _common

NAME = "bench_gpu"
SETTINGS = (  # (label, precision, jit_compile)
    ("float32", "float32", False),
    ("mixed_float16", "mixed_float16", False),
    ("float32 + XLA", "float32", True),
    ("mixed_float16 + XLA", "mixed_float16", True),
)
BACKBONES = ("mobilenetv2", "resnet50")
# (image size, batch, warm-up steps, timed steps) per model, full and quick.
FULL = {"cnn": ((28, 28, 1), 256, 10, 50), "backbone": ((224, 224, 3), 128, 5, 20)}
QUICK = {"cnn": ((28, 28, 1), 8, 1, 2), "backbone": ((32, 32, 3), 2, 1, 2)}


def _parser():
    parser = _common.make_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2",
                        help="keras.applications backbone: "
                             + " or ".join(BACKBONES))
    parser.add_argument("--settings", default=None,
                        help="comma-separated subset of: "
                             + ", ".join(label for label, _, _ in SETTINGS)
                             + " (default all; float32 is always measured)")
    parser.add_argument("--max-gpus", default=None,
                        help="largest number of GPUs for the scaling run "
                             "(default all visible)")
    return parser


def gpu_devices():
    """`(physical GPUs, their compute capabilities)`."""
    import tensorflow as tf

    from kerascnn.core import distribute

    gpus = tf.config.list_physical_devices("GPU")
    return gpus, distribute._gpus_compute_capability() if gpus else []


def build_model(kind, shape, backbone="mobilenetv2", quick=False):
    """The model measured: the quickstart's CNN or a backbone classifier."""
    import keras

    from kerascnn import models

    if kind == "cnn":
        kwargs = ({"depth": 1, "filters": 8, "dense_units": 16}
                  if quick else {})
        return models.build_cnn(shape, 10, verbose=False, **kwargs)
    if backbone == "mobilenetv2":
        return keras.applications.MobileNetV2(
            weights=None, input_shape=shape, classes=10,
            alpha=0.35 if quick else 1.0)
    return keras.applications.ResNet50(weights=None, input_shape=shape,
                                       classes=10)


def synthetic_dataset(shape, batch, seed=0):
    """One random batch of uint8-range float32 images, repeated forever."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (batch, *shape)).astype("float32")
    y = rng.integers(0, 10, (batch,)).astype("int64")
    return tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)


def images_per_second(model, dataset, batch, warmup, steps, jit_compile):
    """Training images/s of `model.fit` after a warm-up call."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    model.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0)
    with _common.Stopwatch() as watch:
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch / watch.seconds


def _fresh():
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)


def parse_settings(text):
    """The `SETTINGS` rows named in `--settings` (float32 always first)."""
    labels = [label for label, _, _ in SETTINGS]
    if text is None:
        return SETTINGS
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if not chosen or any(c not in labels for c in chosen):
        from kerascnn import _validation

        _validation.fail("settings", "comma-separated names among "
                         + ", ".join(labels), text)
    return tuple(row for row in SETTINGS
                 if row[0] == "float32" or row[0] in chosen)


def measure_settings(kind, sizes, backbone, quick, repeats, settings=SETTINGS):
    """`{setting label: median images/s}` for one model."""
    from kerascnn.core import distribute

    shape, batch, warmup, steps = sizes[kind]
    found = {}
    # --quick builds the backbone once (float32): the other settings run the
    # same code as for the CNN, and a backbone's trace dominates a smoke run.
    if quick and kind == "backbone":
        settings = SETTINGS[:1]
    for label, precision, jit in settings:
        runs = []
        for _ in range(repeats):
            _fresh()
            with distribute.precision_scope(precision):
                model = build_model(kind, shape, backbone, quick)
            runs.append(images_per_second(
                model, synthetic_dataset(shape, batch), batch, warmup, steps,
                jit))
        found[label] = statistics.median(runs)
        print(f"  {kind:8s} {label:22s} {found[label]:10.1f} images/s",
              flush=True)
    return found


def scaling_devices(gpus, quick, max_gpus):
    """Device names for the MirroredStrategy runs (CPUs only with --quick)."""
    import tensorflow as tf

    if gpus:
        names = [d.name for d in tf.config.list_logical_devices("GPU")]
    else:  # --quick on a CPU: the logical CPUs (two under the test suite)
        names = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    if max_gpus is not None:
        names = names[:max_gpus]
    return names


def measure_scaling(devices, sizes, quick):
    """`[(replicas, images/s, efficiency)]` for MirroredStrategy over 1..N."""
    import tensorflow as tf

    shape, batch, warmup, steps = sizes["cnn"]
    rows = []
    for count in range(1, len(devices) + 1):
        _fresh()
        # Two MirroredStrategy objects in one process collide on their
        # collective keys (tensorflow#62790): move the base per strategy.
        tf.distribute.MirroredStrategy._collective_key_base += 1000
        strategy = tf.distribute.MirroredStrategy(devices[:count])
        with strategy.scope():  # the model and its optimizer
            model = build_model("cnn", shape, quick=quick)
            speed = images_per_second(
                model, synthetic_dataset(shape, batch * count), batch * count,
                warmup, steps, False)
        efficiency = speed / (count * rows[0][1]) if rows else 1.0
        rows.append((count, speed, efficiency))
        print(f"  MirroredStrategy x{count}: {speed:10.1f} images/s, "
              f"efficiency {efficiency:.2f}", flush=True)
    return rows


def measure_memory(kind, sizes, backbone, quick, on_gpu):
    """`(estimate bytes, measured peak bytes or None)` for float32 training."""
    import tensorflow as tf

    from kerascnn.utils import estimate_memory

    shape, batch, warmup, steps = sizes[kind]
    _fresh()
    if on_gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
        start = tf.config.experimental.get_memory_info("GPU:0")["current"]
    model = build_model(kind, shape, backbone, quick)
    estimate = estimate_memory(model, batch_size=batch, optimizer="adam").total
    if not on_gpu:  # no peak to compare with: nothing to train for
        return estimate, None
    images_per_second(model, synthetic_dataset(shape, batch), batch, warmup,
                      max(1, steps // 5), False)
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] - start
    return estimate, peak


def _plot(output_dir, throughput, title):
    plt = _common.pyplot()
    figure, axes = plt.subplots(1, len(throughput),
                                figsize=(5 * len(throughput), 3.5))
    axes = np.atleast_1d(axes)
    for axis, (name, values) in zip(axes, throughput.items()):
        axis.bar(range(len(values)), list(values.values()))
        axis.set_xticks(range(len(values)))
        axis.set_xticklabels(list(values), rotation=20, fontsize=8)
        axis.set_ylabel("training images/s")
        axis.set_title(name, fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _parser()
    args = _common.parse_args(parser, argv)
    from kerascnn import _validation

    backbone = _validation.check_option("backbone", args.backbone, BACKBONES)
    settings = parse_settings(args.settings)
    max_gpus = (None if args.max_gpus is None
                else _common.parse_int("max_gpus", args.max_gpus))
    gpus, capabilities = gpu_devices()
    if not gpus and not args.quick:
        print("No GPU is visible to TensorFlow "
              "(tf.config.list_physical_devices('GPU') is empty): nothing "
              "measured. Run this on a machine with a GPU, or with --quick "
              "for a CPU smoke run of the code path.")
        # No JSON either: an earlier GPU run's file is kept as it is.
        return {"gpu": False, "measured": False, "ratios": {}}
    sizes = QUICK if args.quick else FULL
    where = (f"{len(gpus)} GPU(s), compute capability "
             + ", ".join(f"{a}.{b}" for a, b in capabilities)
             if gpus else "CPU (--quick smoke run: not GPU figures)")
    print(f"Measuring on {where}; {'quick' if args.quick else 'full'} sizes, "
          f"median of {args.seeds} run(s).", flush=True)

    names = {"cnn": "kerascnn build_cnn (quickstart) "
                    f"{'x'.join(map(str, sizes['cnn'][0]))}, "
                    f"batch {sizes['cnn'][1]}",
             "backbone": f"{backbone} {'x'.join(map(str, sizes['backbone'][0]))}"
                         f", batch {sizes['backbone'][1]}"}
    throughput, ratios, memory = {}, {}, {}
    for kind in ("cnn", "backbone"):
        found = measure_settings(kind, sizes, backbone, args.quick, args.seeds,
                                 settings)
        throughput[names[kind]] = found
        short = "build_cnn" if kind == "cnn" else backbone
        for label in found:
            if label != "float32":
                ratios[f"gpu: images/s ratio {label} / float32 ({short})"] = \
                    found[label] / found["float32"]
    scaling = measure_scaling(scaling_devices(gpus, args.quick, max_gpus),
                              sizes, args.quick)
    for count, _, efficiency in scaling[1:]:
        ratios[f"gpu: scaling efficiency ratio {count} replicas / "
               f"{count} x 1"] = efficiency
    for kind in ("cnn", "backbone"):
        estimate, peak = measure_memory(kind, sizes, backbone, args.quick,
                                        bool(gpus))
        short = "build_cnn" if kind == "cnn" else backbone
        memory[short] = {"estimate_bytes": estimate, "peak_bytes": peak}
        if peak:
            ratios[f"gpu: memory ratio estimate / peak ({short})"] = \
                estimate / peak

    rows = [[model, label, f"{speed:.1f}",
             f"{speed / values['float32']:.2f}"]
            for model, values in throughput.items()
            for label, speed in values.items()]
    print()
    print(_common.format_table(["model", "setting", "images/s",
                                "vs float32"], rows,
                               title=f"Training throughput on {where}"))
    print()
    print(_common.format_table(
        ["replicas", "images/s", "efficiency"],
        [[c, f"{s:.1f}", f"{e:.2f}"] for c, s, e in scaling],
        title="MirroredStrategy scaling (build_cnn, float32, "
              f"{sizes['cnn'][1]} images per replica)"))
    print()
    print(_common.format_table(
        ["model", "estimate_memory (MiB)", "measured peak (MiB)", "ratio"],
        [[m, f"{v['estimate_bytes'] / 2**20:.1f}",
          "not measured (no GPU)" if v["peak_bytes"] is None
          else f"{v['peak_bytes'] / 2**20:.1f}",
          "" if not v["peak_bytes"] else
          f"{v['estimate_bytes'] / v['peak_bytes']:.2f}"]
         for m, v in memory.items()],
        title="Memory for one float32 training batch"))
    results = {"gpu": bool(gpus), "measured": True, "quick": args.quick,
               "where": where, "compute_capability": capabilities,
               "sizes": {k: {"input_shape": v[0], "batch": v[1],
                             "warmup_steps": v[2], "timed_steps": v[3]}
                         for k, v in sizes.items()},
               "throughput_images_per_s": throughput,
               "scaling": [{"replicas": c, "images_per_s": s,
                            "efficiency": e} for c, s, e in scaling],
               "memory": memory, "ratios": ratios}
    _plot(args.output_dir, throughput, f"Training throughput on {where}")
    _common.write_json(args.output_dir, NAME, results)
    return results


if __name__ == "__main__":
    main()
