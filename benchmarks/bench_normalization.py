"""Normalization cost: kerascnn GroupNorm vs Keras GroupNorm vs BatchNorm.

Three copies of one CNN (conv-norm-relu x4 at 32-64 channels, 28x28 input)
that differ only in the normalization layer: `kerascnn.layers.
GroupNormalization(groups=8)`, `keras.layers.GroupNormalization(groups=8)`
and `keras.layers.BatchNormalization`. For each, the median time of a
training step (time between consecutive `on_train_batch_end` calls after a
warm-up epoch) and of an inference batch (`predict_on_batch`) are
measured, interleaving the three models in each round. Ratios: kerascnn GN / Keras GN (kerascnn adds
the tfa signature and `groups="auto"/-1` resolution on top of Keras' layer,
so ~1.0 is expected) and GN / BN (the price of batch-independent
statistics).

Usage: python -m benchmarks.bench_normalization [--quick] [--seeds N]
"""

import time

import keras
import numpy as np

from benchmarks import _common

NAME = "bench_normalization"
KINDS = ("kerascnn_gn", "keras_gn", "batch")
LABELS = {"kerascnn_gn": "kerascnn GroupNormalization(8)",
          "keras_gn": "keras.layers.GroupNormalization(8)",
          "batch": "keras.layers.BatchNormalization"}


class StepTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def _norm(kind):
    from kerascnn import layers

    if kind == "kerascnn_gn":
        return layers.GroupNormalization(groups=8)
    if kind == "keras_gn":
        return keras.layers.GroupNormalization(groups=8)
    return keras.layers.BatchNormalization()


def build(kind, filters):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for i, width in enumerate((filters, filters, 2 * filters, 2 * filters)):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = _norm(kind)(x)
        x = keras.layers.Activation("relu")(x)
        if i % 2 == 1:  # 28 -> 14 -> 7
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    _common.compile_classifier(model)
    return model


def run(args):
    if args.quick:
        images, batch, steps, filters = 64, 16, 4, 8
    else:
        images, batch, steps, filters = 2048, 32, 64, 32
    rng = np.random.default_rng(0)
    x = rng.random((images, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, images)
    models = {k: build(k, filters) for k in KINDS}
    for model in models.values():  # warm-up: trace train and predict
        model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1,
                  verbose=0)
        model.predict_on_batch(x[:batch])
    train = {k: [] for k in KINDS}
    infer = {k: [] for k in KINDS}
    for round_ in range(args.seeds):
        order = KINDS if round_ % 2 == 0 else tuple(reversed(KINDS))
        for kind in order:
            timer = StepTimer()
            models[kind].fit(x[:batch * steps], y[:batch * steps],
                             batch_size=batch, epochs=1, verbose=0,
                             callbacks=[timer], shuffle=False)
            train[kind].extend(np.diff(timer.ends).tolist())
            for step in range(steps):
                chunk = x[step * batch:(step + 1) * batch]
                start = time.perf_counter()
                models[kind].predict_on_batch(chunk)
                infer[kind].append(time.perf_counter() - start)
    train_ms = {k: 1000 * float(np.median(v)) for k, v in train.items()}
    infer_ms = {k: 1000 * float(np.median(v)) for k, v in infer.items()}
    ratios = {
        "norm: train step kerascnn GN / keras GN":
            train_ms["kerascnn_gn"] / train_ms["keras_gn"],
        "norm: train step kerascnn GN / BN":
            train_ms["kerascnn_gn"] / train_ms["batch"],
        "norm: train step keras GN / BN":
            train_ms["keras_gn"] / train_ms["batch"],
        "norm: inference kerascnn GN / keras GN":
            infer_ms["kerascnn_gn"] / infer_ms["keras_gn"],
        "norm: inference kerascnn GN / BN":
            infer_ms["kerascnn_gn"] / infer_ms["batch"],
    }
    return dict(batch_size=batch, steps_per_round=steps, rounds=args.seeds,
                filters=filters, train_step_ms=train_ms,
                inference_batch_ms=infer_ms, ratios=ratios)


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    positions = np.arange(len(KINDS))
    axis.bar(positions - 0.2, [results["train_step_ms"][k] for k in KINDS],
             0.4, label="training step")
    axis.bar(positions + 0.2, [results["inference_batch_ms"][k] for k in KINDS],
             0.4, label="inference batch")
    axis.set_xticks(positions, [LABELS[k].replace("(", "\n(") for k in KINDS],
                    fontsize=7)
    axis.set_ylabel(f"median ms per batch of {results['batch_size']}")
    axis.set_title("Normalization cost (CPU)")
    axis.legend()
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0],
                                 default_seeds=3)
    parser.description += " (--seeds: interleaved rounds)"
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    results = run(args)
    results.update(quick=args.quick)
    rows = [[LABELS[k], f"{results['train_step_ms'][k]:.2f}",
             f"{results['inference_batch_ms'][k]:.2f}"] for k in KINDS]
    print(_common.format_table(["layer", "train step ms", "inference ms"],
                               rows, title=f"batch {results['batch_size']}"))
    for name, value in results["ratios"].items():
        print(f"{name}: {value:.3f}")
    results["png"] = plot(results, args.output_dir)
    results["json"] = _common.write_json(args.output_dir, NAME, results)
    return results


if __name__ == "__main__":
    main()
