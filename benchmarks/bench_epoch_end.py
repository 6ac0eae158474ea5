"""The end-of-epoch stall of tf.data's autotuning thread, and its removal.

Part A, the mechanism in TensorFlow alone: a finite
`Dataset.range(n).prefetch(AUTOTUNE)` is read to its end inside a
`tf.function` (as `model.fit`, `evaluate` and `predict` read every finite
epoch), one element per call with a pause of 20 ms between calls (a
training step) so that the iterator lives about 1.5, 3 or 6 s; then it is
freed (`del` + `gc.collect()`) and the freeing is timed. With autotuning on, the
free waits for the autotuning thread's next wake-up (at 10 ms, then at
doubling intervals: 2.55 s, 5.11 s, 10.23 s ... after the iterator was
made); with `tf.data.Options().autotune.enabled = False`
(`kerascnn.data.pipeline.without_autotune_stall`) it does not.

Part B, what it costs a training run: `model.fit` of `fit`'s default
network (`build_cnn(**kerascnn.training.defaults.MODEL)`, 3 blocks on
28x28) for 4 epochs on the same `kerascnn.data.make_dataset` pipelines
(training: 3,600 mnist5k images, 360 a class; validation: 900), once as
kerascnn builds them (autotuning off) and once with autotuning switched
back on, in alternating order, several rounds. Ratio = wall time of the
fit with kerascnn's pipelines / with autotuning on (lower is faster; 1.0
is no change).

    python -m benchmarks.bench_epoch_end [--quick] [--seeds ROUNDS]
"""

import gc
import time

import numpy as np

from benchmarks import _common

NAME = "bench_epoch_end"


def _with_autotune(dataset, enabled):
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = enabled
    return dataset.with_options(options)


def free_time(lifetime, enabled, step_s=0.02):
    """Seconds to free an iterator read to its end in a `tf.function`."""
    import tensorflow as tf

    steps = max(1, int(round(lifetime / step_s)))
    dataset = _with_autotune(
        tf.data.Dataset.range(steps).prefetch(tf.data.AUTOTUNE), enabled)

    @tf.function
    def next_element(iterator):
        return iterator.get_next()

    started = time.perf_counter()
    iterator = iter(dataset)
    try:
        while True:
            next_element(iterator)
            time.sleep(step_s)
    except tf.errors.OutOfRangeError:
        pass
    read = time.perf_counter() - started
    del iterator
    gc.collect()
    return read, time.perf_counter() - started - read


def fit_time(x, y, x_val, y_val, enabled_autotune, epochs, batch_size, seed):
    """Wall seconds of `model.fit` on kerascnn pipelines (autotune as asked)."""
    import keras

    from kerascnn.data import make_dataset
    from kerascnn.models import build_cnn
    from kerascnn.training import defaults

    keras.utils.set_random_seed(seed)
    train = make_dataset(x, y, batch_size=batch_size, seed=seed, cache=False)
    validation = make_dataset(x_val, y_val, batch_size=batch_size,
                              shuffle=False, cache=False)
    if enabled_autotune:
        train = _with_autotune(train, True)
        validation = _with_autotune(validation, True)
    model = build_cnn(x.shape[1:], 10, normalizer=x, verbose=False,
                      **defaults.MODEL)
    _common.compile_classifier(model)
    model.fit(train.take(1), epochs=1, verbose=0, shuffle=False)  # tracing
    started = time.perf_counter()
    model.fit(train, validation_data=validation, epochs=epochs, verbose=0,
              shuffle=False)
    return time.perf_counter() - started


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0],
                                 default_seeds=3)
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    rounds = args.seeds
    lifetimes = [0.3] if args.quick else [1.5, 3.0, 6.0]
    mechanism = {}
    for lifetime in lifetimes:
        for enabled in (True, False):
            runs = [free_time(lifetime, enabled) for _ in range(rounds)]
            mechanism[f"{lifetime:g} s, autotune {'on' if enabled else 'off'}"
                      ] = {"read_s": [r for r, _ in runs],
                           "free_s": [f for _, f in runs]}
    from kerascnn.datasets import load_mnist5k

    per_class, epochs = (40, 1) if args.quick else (450, 4)
    x, y = _common.per_class_subset(*load_mnist5k(), per_class, seed=0)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    split = len(x) * 4 // 5
    fits = {"kerascnn": [], "autotune on": []}
    for index in range(rounds):
        sides = (("kerascnn", False), ("autotune on", True))
        for label, enabled in (sides if index % 2 == 0 else sides[::-1]):
            fits[label].append(fit_time(x[:split], y[:split], x[split:],
                                        y[split:], enabled, epochs, 64,
                                        seed=index))
            print(f"round {index} {label}: fit {fits[label][-1]:.2f} s",
                  flush=True)
    ratio = sum(fits["kerascnn"]) / sum(fits["autotune on"])
    results = {
        "rounds": rounds, "quick": args.quick, "epochs": epochs,
        "images": {"train": split, "validation": len(x) - split},
        "iterator_free_s": mechanism, "fit_s": fits,
        "ratios": {"epoch end: fit wall time kerascnn / autotune on": ratio},
        "environment": _common.environment(),
    }

    def table(results):
        rows = [[key, f"{np.mean(v['read_s']):.2f}",
                 _common.fmt_mean_std(v["free_s"])]
                for key, v in results["iterator_free_s"].items()]
        rows += [[f"model.fit, {epochs} epochs: {label}", "",
                  _common.fmt_mean_std(values)]
                 for label, values in results["fit_s"].items()]
        return ["iterator life / run", "read (s)", "free / fit (s)"], rows

    def plot(results, output_dir):
        plt = _common.pyplot()
        figure, axis = plt.subplots(figsize=(6, 3.5))
        labels = list(results["iterator_free_s"])
        axis.bar(range(len(labels)),
                 [np.mean(v["free_s"]) for v in
                  results["iterator_free_s"].values()])
        axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right",
                        fontsize=7)
        axis.set_ylabel("seconds to free the iterator")
        axis.set_title("tf.data iterator freed after its end was read in a "
                       "tf.function", fontsize=8)
        return _common.save_figure(figure, output_dir, NAME)

    results = _common.report(NAME, args, results, table, plot,
                             title="tf.data autotuning and the end of an "
                                   "epoch")
    print(f"epoch end: fit wall time kerascnn / autotune on: {ratio:.3f}")
    return results


if __name__ == "__main__":
    main()
