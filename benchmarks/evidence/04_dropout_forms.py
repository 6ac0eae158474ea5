"""Evidence 4: inverted dropout vs test-time scaling (the lecture's two forms).

Claim (CS231n / the course's "CNN Training 2" lecture): dropout keeps each
unit with probability p; either scale the activations by p at test time
("output at test time = expected output at training time"), or, more
commonly, divide the kept units by p at training time ("inverted dropout")
and leave test time unchanged. The two give the same expected activations,
and the same predictions.

Measured here:

1. Expected activations: over many random masks, the mean training-mode
   output of `kerascnn.layers.InvertedDropout` equals its inference output
   (the input), and the mean training output of the test-time-scaling form
   equals its inference output (p x input); the deviation is compared with
   the Monte-Carlo standard error.
2. After training: an MLP with `InvertedDropout` and the same MLP with the
   test-time-scaling form, from the same initial weights and the same masks,
   trained the same way: test accuracy of each and the share of test images
   on which their predicted classes agree.
3. Exact equivalence: the trained inverted-dropout network rewritten in the
   test-time-scaling form (the next layer's kernel divided by p, which is
   the same function) gives identical predictions (max |difference|).

Usage: python -m benchmarks.evidence 04_dropout_forms [--quick] [--seeds N]
"""

import keras
import numpy as np

from benchmarks import _common

NAME = "04_dropout_forms"
RATE = 0.5


@keras.saving.register_keras_serializable(package="kerascnn_evidence")
class TestTimeScalingDropout(keras.layers.Layer):
    """The lecture's first form: drop at training, multiply by p at test.

    Uses the same uniform draws as `InvertedDropout` with the same `seed`
    (`keras.random.uniform` on a `SeedGenerator(seed)`), so two networks that
    differ only in the form see the same masks.

    Args:
        rate: Float in [0, 1), the probability of dropping a unit.
        seed: Integer seed of the masks.
    """

    def __init__(self, rate, seed=None, **kwargs):
        from kerascnn import _validation

        super().__init__(**kwargs)
        self.rate = _validation.check_rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        keep_prob = 1.0 - self.rate
        if not training:
            return inputs * keep_prob
        uniform = keras.random.uniform(keras.ops.shape(inputs),
                                       seed=self.seed_generator,
                                       dtype=inputs.dtype)
        keep = keras.ops.less(uniform, keep_prob)
        return keras.ops.where(keep, inputs, keras.ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def build_mlp(form, normalizer, units, seed):
    from kerascnn import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(normalizer(inputs))
    x = keras.layers.Dense(units, activation="relu", name="hidden")(x)
    if form == "inverted":
        x = layers.InvertedDropout(RATE, seed=seed, name="dropout")(x)
    else:
        x = TestTimeScalingDropout(RATE, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name=f"mlp_{form}")


def expected_activations(samples, seed):
    """Part 1: Monte-Carlo mean of the training output vs the test output."""
    from kerascnn import layers

    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 1.0, size=(1, 512)).astype("float32")  # ReLU-like
    batch = np.repeat(x, samples, axis=0)
    keep = 1.0 - RATE
    result = {}
    for form, layer in (("inverted", layers.InvertedDropout(RATE, seed=seed)),
                        ("test_time_scaling",
                         TestTimeScalingDropout(RATE, seed=seed))):
        train = np.asarray(layer(batch, training=True))
        test = np.asarray(layer(x, training=False))[0]
        mean = train.mean(axis=0)
        # Standard error of the mean of `samples` Bernoulli-masked copies.
        scale = 1.0 / keep if form == "inverted" else 1.0
        stderr = x[0] * scale * np.sqrt(keep * RATE / samples)
        z = np.abs(mean - test) / stderr
        result[form] = dict(
            test_output_over_input=float(np.mean(test / x[0])),
            mean_train_over_test=float(np.mean(mean) / np.mean(test)),
            max_relative_deviation=float(np.max(np.abs(mean - test) / test)),
            max_z=float(z.max()), share_within_3_stderr=float(np.mean(z < 3)),
            kept_fraction=float(np.mean(train != 0)))
    return dict(samples=samples, units=x.shape[1], rate=RATE, **result)


def run(args):
    from kerascnn import data

    if args.quick:
        samples, epochs, per_class, units, batch = 200, 1, 10, 16, 16
    else:
        samples, epochs, per_class, units, batch = 20000, 8, None, 256, 64
    part1 = expected_activations(samples, seed=0)
    runs = []
    for seed in range(args.seeds):
        splits = _common.mnist5k_splits(seed=seed, per_class=per_class)
        normalizer = data.normalization_layer(splits.x_train)
        models, predictions, initial = {}, {}, {}
        for form in ("inverted", "test_time_scaling"):
            model = build_mlp(form, normalizer, units, seed)
            initial[form] = [np.array(w) for w in model.get_weights()]
            _common.compile_classifier(model, optimizer=keras.optimizers.SGD(
                learning_rate=0.05, momentum=0.9))
            model.fit(splits.x_train, splits.y_train, batch_size=batch,
                      epochs=epochs, verbose=0, shuffle=False)
            models[form] = model
            predictions[form] = model.predict(splits.x_test, verbose=0)
        same_init = all(np.array_equal(a, b) for a, b in zip(
            initial["inverted"], initial["test_time_scaling"]))
        accuracy = {f: float(np.mean(np.argmax(p, -1) == splits.y_test))
                    for f, p in predictions.items()}
        agreement = float(np.mean(
            np.argmax(predictions["inverted"], -1)
            == np.argmax(predictions["test_time_scaling"], -1)))
        # Part 3: the inverted network rewritten in test-time-scaling form.
        converted = build_mlp("test_time_scaling", normalizer, units, seed)
        trained = models["inverted"]
        converted.get_layer("hidden").set_weights(
            trained.get_layer("hidden").get_weights())
        kernel, bias = trained.get_layer("out").get_weights()
        converted.get_layer("out").set_weights([kernel / (1.0 - RATE), bias])
        rewritten = converted.predict(splits.x_test, verbose=0)
        max_diff = float(np.max(np.abs(rewritten - predictions["inverted"])))
        same_class = float(np.mean(np.argmax(rewritten, -1) == np.argmax(
            predictions["inverted"], -1)))
        runs.append(dict(seed=seed, same_initial_weights=same_init,
                         test_accuracy=accuracy, prediction_agreement=agreement,
                         converted_max_abs_difference=max_diff,
                         converted_class_agreement=same_class))
        print(f"  seed {seed}: accuracy inverted {accuracy['inverted']:.4f}, "
              f"test-time scaling {accuracy['test_time_scaling']:.4f}, "
              f"agreement {agreement:.4f}; rewritten max |diff| {max_diff:.2e}",
              flush=True)
    return dict(expected=part1, runs=runs, epochs=epochs, units=units,
                rate=RATE, optimizer="SGD lr 0.05 momentum 0.9",
                train_images=len(splits.y_train),
                test_images=len(splits.y_test))


def table(results):
    e = results["expected"]
    headers = ["measure", "inverted dropout", "test-time scaling",
               "lecture"]
    rows = [
        ["test output / input", f"{e['inverted']['test_output_over_input']:.3f}",
         f"{e['test_time_scaling']['test_output_over_input']:.3f}",
         f"1 (inverted) / p = {1 - RATE:g}"],
        [f"mean train output / test output ({e['samples']} masks)",
         f"{e['inverted']['mean_train_over_test']:.4f}",
         f"{e['test_time_scaling']['mean_train_over_test']:.4f}", "1"],
        ["units within 3 standard errors",
         f"{100 * e['inverted']['share_within_3_stderr']:.1f}%",
         f"{100 * e['test_time_scaling']['share_within_3_stderr']:.1f}%",
         "~99.7%"],
    ]
    for r in results["runs"]:
        rows.append([f"seed {r['seed']}: test accuracy after training",
                     f"{r['test_accuracy']['inverted']:.4f}",
                     f"{r['test_accuracy']['test_time_scaling']:.4f}",
                     "equal"])
        rows.append([f"seed {r['seed']}: same predicted class",
                     f"{100 * r['prediction_agreement']:.2f}%", "", "100%"])
        rows.append([f"seed {r['seed']}: rewritten as test-time scaling, "
                     "max abs diff",
                     f"{r['converted_max_abs_difference']:.1e}",
                     f"{100 * r['converted_class_agreement']:.1f}% same class",
                     "0"])
    return headers, rows


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    e = results["expected"]
    forms = ["inverted", "test_time_scaling"]
    left.bar([0, 1], [e[f]["mean_train_over_test"] for f in forms],
             color=["C0", "C1"])
    left.axhline(1.0, color="k", linestyle="--")
    left.set_xticks([0, 1], ["inverted", "test-time scaling"])
    left.set_ylim(0.9, 1.1)
    left.set_ylabel("mean training output / test output")
    left.set_title(f"Expected activations ({e['samples']} masks)")
    seeds = [r["seed"] for r in results["runs"]]
    width = 0.35
    positions = np.arange(len(seeds))
    for i, f in enumerate(forms):
        right.bar(positions + (i - 0.5) * width,
                  [r["test_accuracy"][f] for r in results["runs"]], width,
                  label=f.replace("_", " "), color=f"C{i}")
    right.set_xticks(positions, [f"seed {s}" for s in seeds])
    right.set_ylabel("test accuracy")
    low = min(min(r["test_accuracy"].values()) for r in results["runs"])
    right.set_ylim(max(0.0, low - 0.05), 1.0)
    right.set_title("After training (same init, same masks)")
    right.legend(loc="lower right")
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0],
                                 default_seeds=2)
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    results = run(args)
    results.update(claim="same expected activations; identical predictions "
                         "(CS231n dropout lecture)",
                   quick=args.quick, seeds=args.seeds)
    return _common.report(NAME, args, results, table, plot,
                          title="Two forms of dropout")


if __name__ == "__main__":
    main()
