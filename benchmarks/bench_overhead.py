"""Overhead of kerascnn: `training.fit` + `build_cnn` vs hand-written Keras.

The same architecture twice: built by `kerascnn.models.build_cnn` and
trained by `kerascnn.training.fit` (split given, normalizer inside the model,
`tf.data` pipeline, early stopping off so both run all epochs), and written
by hand with `keras.layers` (the same layers, initializers and parameter
count, checked) and trained by a plain `model.fit` on NumPy arrays with the
same validation data, batch size and optimizer. Throughput is training
images per second over the epochs after the first (tracing excluded),
median over epochs, interleaving the two in each round so that load from
other processes hits both. Ratio = kerascnn / Keras (target >= 0.97). The
end-to-end wall time of each call (which for `fit` includes the checks, the
split bookkeeping, the test evaluation, the report and the loss-curve
diagnosis) is reported too.

Usage: python -m benchmarks.bench_overhead [--quick] [--seeds N]
"""

import time

import keras
import numpy as np

from benchmarks import _common

NAME = "bench_overhead"
TARGET = 0.97


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def hand_written(input_shape, x_train, filters, dense_units, depth=2,
                 convs_per_block=2, dropout=0.25):
    """The network `build_cnn` builds, written with plain Keras layers."""
    normalizer = keras.layers.Normalization(axis=-1)
    normalizer.adapt(x_train.astype("float32"))
    inputs = keras.Input(input_shape)
    x = normalizer(inputs)
    for block in range(depth):
        for _ in range(convs_per_block):
            x = keras.layers.Conv2D(filters * 2 ** block, 3, padding="same",
                                    use_bias=False,
                                    kernel_initializer="he_normal")(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense_units, activation="relu",
                           kernel_initializer="he_normal")(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(10)(x)
    outputs = keras.layers.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs)


def _trainable(model):
    """(trainable parameter count, layer types after the input) of a model.

    Non-trainable statistics differ legitimately: Keras' adapted
    `Normalization` stores a `count`, an un-adapted one built from
    `mean`/`variance` arguments stores none.
    """
    kinds = [type(layer).__name__ for layer in model.layers
             if not isinstance(layer, keras.layers.InputLayer)]
    kinds = ["Dropout" if k == "InvertedDropout" else k for k in kinds]
    return (sum(int(np.prod(w.shape)) for w in model.trainable_weights),
            tuple(kinds))


def run(args):
    from kerascnn import training

    if args.quick:
        per_class, epochs, batch, filters, units = 20, 2, 32, 4, 16
    else:
        per_class, epochs, batch, filters, units = None, 4, 64, 16, 128
    rounds = args.seeds
    splits = _common.mnist5k_splits(seed=0, per_class=per_class,
                                    test_split=0.1)
    n_train = len(splits.y_train)
    model_kwargs = dict(depth=2, filters=filters, dense_units=units,
                        pooling="max2",  # the hand-written network's
                        normalization="batch", dropout=0.25,
                        convs_per_block=2, head="flatten")
    epoch_times = {"kerascnn": [], "keras": []}
    wall = {"kerascnn": [], "keras": []}
    params = {}
    for round_ in range(rounds):
        order = ("kerascnn", "keras") if round_ % 2 == 0 else ("keras",
                                                               "kerascnn")
        for which in order:
            timer = EpochTimer()
            keras.utils.set_random_seed(round_)
            start = time.perf_counter()
            if which == "kerascnn":
                result = training.fit(
                    splits, epochs=epochs, batch_size=batch,
                    learning_rate=1e-3, early_stopping=False, balance=None,
                    model_kwargs=model_kwargs, verbose=0, callbacks=[timer])
                params[which] = _trainable(result.model)
            else:
                model = hand_written(splits.x_train.shape[1:], splits.x_train,
                                     filters, units)
                _common.compile_classifier(model)
                model.fit(splits.x_train, splits.y_train, batch_size=batch,
                          epochs=epochs, verbose=0, callbacks=[timer],
                          validation_data=(splits.x_val, splits.y_val))
                params[which] = _trainable(model)
            wall[which].append(time.perf_counter() - start)
            epoch_times[which].extend(timer.times[1:] or timer.times)
            print(f"  round {round_} {which:<8}: epochs "
                  + ", ".join(f"{t:.2f}" for t in timer.times) + " s",
                  flush=True)
    if params["kerascnn"] != params["keras"]:
        raise RuntimeError(f"The two networks differ: {params}")
    throughput = {k: n_train / float(np.median(v))
                  for k, v in epoch_times.items()}
    ratio = throughput["kerascnn"] / throughput["keras"]
    wall_ratio = float(np.median(wall["keras"]) / np.median(wall["kerascnn"]))
    return dict(train_images=n_train, epochs=epochs, batch_size=batch,
                rounds=rounds, trainable_parameters=params["keras"][0],
                layers=list(params["keras"][1]),
                epoch_seconds=epoch_times, wall_seconds=wall,
                throughput_images_per_s=throughput,
                ratios={"overhead: throughput kerascnn / keras": ratio,
                        "overhead: end-to-end speed kerascnn / keras":
                            wall_ratio},
                target=TARGET, meets_target=bool(ratio >= TARGET))


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, axis = plt.subplots(figsize=(5, 4))
    keys = ("keras", "kerascnn")
    axis.bar([0, 1], [results["throughput_images_per_s"][k] for k in keys],
             color=["C0", "C2"])
    axis.set_xticks([0, 1], ["hand-written Keras\n+ model.fit",
                             "build_cnn\n+ kerascnn.training.fit"])
    axis.set_ylabel("training images / s (median epoch)")
    ratio = results["ratios"]["overhead: throughput kerascnn / keras"]
    axis.set_title(f"Throughput ratio {ratio:.3f} (target >= {TARGET})")
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0],
                                 default_seeds=3)
    parser.description += " (--seeds: interleaved rounds)"
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    results = run(args)
    results.update(quick=args.quick)
    rows = [[k, f"{results['throughput_images_per_s'][k]:.0f}",
             f"{np.median(results['epoch_seconds'][k]):.2f}",
             f"{np.median(results['wall_seconds'][k]):.1f}"]
            for k in ("keras", "kerascnn")]
    print(_common.format_table(
        ["path", "images/s", "median epoch s", "wall s (whole call)"], rows,
        title=f"{results['trainable_parameters']} trainable parameters, "
              f"{results['train_images']} "
              f"training images, batch {results['batch_size']}"))
    for name, value in results["ratios"].items():
        print(f"{name}: {value:.3f}")
    results["png"] = plot(results, args.output_dir)
    results["json"] = _common.write_json(args.output_dir, NAME, results)
    return results


if __name__ == "__main__":
    main()
