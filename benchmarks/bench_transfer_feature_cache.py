"""Feature cache vs plain frozen-base `model.fit`: same head, same epochs.

With the backbone frozen, `kerascnn.transfer.fit_cached_head` runs the
backbone once over the data, trains the head on the cached features and
assembles the end-to-end model; the plain way (the Keras transfer guide)
trains `backbone -> pooling -> head` with `model.fit`, running the frozen
backbone every epoch. Both train the same head (same initial weights,
Dropout 0.2 + Dense softmax), with Adam 1e-3, batch 32, the same epochs, no
early stopping, one epoch per `steps_per_execution` call in both. Data:
mnist5k digits 5-9 padded to 32x32 and upsampled to 96x96 (320 train,
160 validation images), grayscale to RGB in the preprocessing layer;
backbone: MobileNetV2 with `weights=None` (no download; with ImageNet
weights the cost per image is the same, but random features leave both
accuracies near chance: the point is that they are equal). The ratio grows
with the epochs and with the backbone's cost per image (at ImageNet sizes
it approaches the number of epochs). Reported: wall time
of each (feature extraction included for the cache), the speed ratio
plain / cached (target >= 5), and both validation accuracies (equal up to
float rounding and dropout draws).

Usage: python -m benchmarks.bench_transfer_feature_cache [--quick]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

NAME = "bench_transfer_feature_cache"
TARGET = 5.0


def _data(n_train, n_val, size):
    from kerascnn import datasets

    images, labels = datasets.load_mnist5k()
    keep = labels >= 5
    images = np.pad(images[keep], ((0, 0), (2, 2), (2, 2), (0, 0)))
    factor = size // 32
    images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    labels = labels[keep] - 5
    order = np.random.default_rng(0).permutation(len(labels))
    train, val = order[:n_train], order[n_train:n_train + n_val]
    return (images[train].astype("float32"), labels[train],
            images[val].astype("float32"), labels[val])


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(-1) == y))


def main(argv=None):
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny size for smoke tests")
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--size", type=int, default=None,
                        help="image size, a multiple of 32 (default 96)")
    args = parser.parse_args(argv)
    from kerascnn import transfer
    from kerascnn.core.compile import compile_classifier
    from kerascnn.transfer import feature_cache

    epochs = args.epochs or (2 if args.quick else 30)  # fit's default
    n_train, n_val = (96, 64) if args.quick else (320, 160)
    size = args.size or (32 if args.quick else 96)
    batch_size = 32
    x_train, y_train, x_val, y_val = _data(n_train, n_val, size)
    keras.utils.set_random_seed(0)
    backbone = transfer.get_backbone(args.backbone, input_shape=(size, size, 1),
                                     weights=None)
    transfer.freeze_backbone(backbone)
    steps = -(-n_train // batch_size)

    # Plain: the frozen backbone runs in every epoch.
    keras.utils.set_random_seed(1)
    head = feature_cache.build_head(backbone.model.output.shape[-1], 5, 0.2)
    initial = head.get_weights()
    plain = transfer.assemble(backbone, head)
    compile_classifier(plain, learning_rate=1e-3, steps_per_execution=steps)
    start = time.perf_counter()
    plain.fit(x_train, y_train, validation_data=(x_val, y_val),
              epochs=epochs, batch_size=batch_size, verbose=0)
    plain_seconds = time.perf_counter() - start
    plain_accuracy = _accuracy(plain, x_val, y_val)

    # Cached: the backbone runs once; the same head, same initial weights.
    keras.utils.set_random_seed(1)
    original_build_head = feature_cache.build_head

    def build_same_head(*a, **k):
        built = original_build_head(*a, **k)
        built.set_weights(initial)
        return built

    feature_cache.build_head = build_same_head
    try:
        start = time.perf_counter()
        cached = transfer.fit_cached_head(
            backbone, x_train, y_train, (x_val, y_val), epochs=epochs,
            batch_size=batch_size, patience=0)
        cached_seconds = time.perf_counter() - start
    finally:
        feature_cache.build_head = original_build_head
    cached_accuracy = _accuracy(cached.model, x_val, y_val)
    ratio = plain_seconds / cached_seconds
    print(f"backbone {backbone.name} {size}x{size}, {n_train} train / {n_val} val "
          f"images, {epochs} epochs, batch {batch_size}")
    print(f"plain frozen-base model.fit: {plain_seconds:.2f} s, "
          f"val accuracy {plain_accuracy:.4f}")
    print(f"feature cache: {cached_seconds:.2f} s (features "
          f"{cached.feature_seconds:.2f} s, head {cached.train_seconds:.2f} "
          f"s), val accuracy {cached_accuracy:.4f}")
    print(f"speed ratio plain / cached: {ratio:.2f} (target >= {TARGET:g})")
    return {"ratios": {"speed ratio plain / cached": ratio},
            "plain_seconds": plain_seconds, "cached_seconds": cached_seconds,
            "plain_accuracy": plain_accuracy,
            "cached_accuracy": cached_accuracy}


if __name__ == "__main__":
    main()
