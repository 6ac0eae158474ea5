"""The CNN search space, shaped so that collapsing conv stacks cannot be drawn.

The lecture ("CNNs: Practical Tips") names the hyperparameters that matter for
a CNN: filter size, stride, padding and depth (and pooling), the learning rate
first of all, and the rule that ties the first four together:

    W2 = (W1 - F + 2P) / S + 1   must stay a positive integer.

A naive KerasTuner space draws filter size, stride, padding and depth
independently, so many draws describe a stack that shrinks to nothing; they
fail inside `build` with a negative-dimension error that names no
hyperparameter and count towards `max_consecutive_failed_trials`.
`SearchSpace.conv_options` instead walks every combination through
`kerascnn.models.cnn_output_shapes` for the real input size before the
search starts, and `CNNHyperModel` draws the depth first and then one of the
(filter size, stride, padding, pooling) combinations valid for that depth,
inside a KerasTuner conditional scope. The pruned combinations are counted
(`SpaceReport.excluded`), never trained.
"""

import collections
import itertools
import math
import numbers

from kerascnn import _validation
from kerascnn.core import settings

#: Defaults, following the lecture: small odd filters (3x3 first), stride 1
#: or 2, "same"/"valid" or an explicit zero padding of 1 or 2, a few blocks.
DEFAULT_SPACE = {
    "depths": (1, 2, 3),
    "filter_sizes": (3, 5, 7),
    "strides": (1, 2),
    "paddings": ("same", "valid", 1, 2),
    "poolings": ("max2",),
    "filters": (8, 16, 32),
    "normalizations": ("batch", "group", "none"),
    "dropouts": (0.0, 0.25, 0.5),
    "learning_rate": (1e-4, 1e-2),
    "learning_rate_step": None,
    "convs_per_block": 2,
}

_POOLINGS = settings.POOLINGS
_NORMALIZATIONS = settings.NORMALIZATIONS

ConvConfig = collections.namedtuple(
    "ConvConfig", ["filter_size", "stride", "padding", "pooling"])
ConvConfig.__doc__ = "One (filter size, stride, padding, pooling) choice."


def _check_tuple(name, values, check_item, expectation):
    if isinstance(values, (str, bytes)) or not isinstance(
            values, (list, tuple)):
        _validation.fail(name, f"a non-empty list of {expectation}", values)
    if len(values) == 0:
        _validation.fail(name, f"a non-empty list of {expectation} (an empty "
                         "list leaves nothing to search)", values)
    checked = []
    for value in values:
        try:
            item = check_item(value)
        except _validation.ArgumentError:
            _validation.fail(name, f"a non-empty list of {expectation}", values)
        if item in checked:
            _validation.fail(name, f"a list of distinct {expectation}", values)
        checked.append(item)
    return tuple(checked)


def _positive_int(value):
    return _validation.check_positive_int("value", value)


def _padding(value):
    if isinstance(value, str):
        return _validation.check_option("value", value, ("same", "valid"))
    return _validation.check_non_negative_int("value", value)


def _pooling(value):
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if not isinstance(value, str):
        _validation.fail("value", "a pooling name", value)
    return _validation.check_option("value", value, _POOLINGS[:-1])


def _normalization(value):
    if not isinstance(value, str):
        _validation.fail("value", "a normalization name", value)
    return _validation.check_option("value", value, _NORMALIZATIONS)


def _rate(value):
    return _validation.check_rate("value", value)


def encode_conv(config, with_pooling):
    """Encodes a `ConvConfig` as the string KerasTuner draws, e.g. `"5x5/s2/p1"`."""
    padding = config.padding if isinstance(config.padding, str) else (
        f"p{config.padding}")
    text = f"{config.filter_size}x{config.filter_size}/s{config.stride}/{padding}"
    if with_pooling:
        text += f"/{config.pooling or 'nopool'}"
    return text


def decode_conv(text, default_pooling=None):
    """Inverse of `encode_conv`. Returns a `ConvConfig`."""
    parts = text.split("/")
    if len(parts) not in (3, 4) or "x" not in parts[0] or not parts[1].startswith(
            "s"):
        _validation.fail("conv", "an encoded conv configuration such as "
                         "'3x3/s1/same'", text)
    filter_size = int(parts[0].split("x")[0])
    stride = int(parts[1][1:])
    padding = parts[2] if parts[2] in ("same", "valid") else int(parts[2][1:])
    pooling = default_pooling
    if len(parts) == 4:
        pooling = None if parts[3] == "nopool" else parts[3]
    return ConvConfig(filter_size, stride, padding, pooling)


SpaceReport = collections.namedtuple(
    "SpaceReport", ["options", "total", "valid", "excluded", "examples"])
SpaceReport.__doc__ = """What `SearchSpace.conv_options` kept for an input shape.

Fields: `options` (dict depth -> list of valid `ConvConfig`), `total`
(combinations of depth, filter size, stride, padding and pooling), `valid`,
`excluded` (`total - valid`: stacks that collapse or do not tile, never
drawn) and `examples` (dict depth -> the error of one excluded combination).
"""


class SearchSpace:
    """The hyperparameters `CNNHyperModel` tunes, with their candidate values.

    Every list is a KerasTuner `Choice` (the learning rate a log-scale
    `Float`); what this adds over declaring them by hand is validation before
    any trial (no empty lists, no duplicates, names `build_cnn` accepts) and
    `conv_options`, which removes the (depth, filter size, stride, padding,
    pooling) combinations whose output volume collapses for the actual input.

    Args:
        depths: Conv block counts to try. Defaults to `(1, 2, 3)`.
        filter_sizes: Square filter sizes F. Defaults to `(3, 5, 7)`.
        strides: Strides S of the first conv of each block. Defaults to
            `(1, 2)`.
        paddings: `"same"`, `"valid"` or explicit zero paddings P (integers).
            Defaults to `("same", "valid", 1, 2)`.
        poolings: `build_cnn` poolings (`"max2"`, `"max3"`, `"avg2"`,
            `"strided"`, `None`). Defaults to `("max2",)`.
        filters: Filters of the first block (doubled per block, so depth 3
            with 32 reaches 128). Defaults to `(8, 16, 32)`.
        normalizations: `build_cnn` normalizations. Defaults to
            `("batch", "group", "none")`.
        dropouts: Dropout rates before the classifier. Defaults to
            `(0.0, 0.25, 0.5)`.
        learning_rate: `(min, max)` of the log-scale learning-rate range, or
            a single float to fix it. Defaults to `(1e-4, 1e-2)`.
        learning_rate_step: `None` (continuous) or a factor > 1 between
            neighbouring learning rates (grid search uses `sqrt(10)` when
            this is `None`). Defaults to `None`.
        convs_per_block: Integer >= 1, convs per block (not tuned).
            Defaults to `2`.
    """

    def __init__(self, depths=DEFAULT_SPACE["depths"],
                 filter_sizes=DEFAULT_SPACE["filter_sizes"],
                 strides=DEFAULT_SPACE["strides"],
                 paddings=DEFAULT_SPACE["paddings"],
                 poolings=DEFAULT_SPACE["poolings"],
                 filters=DEFAULT_SPACE["filters"],
                 normalizations=DEFAULT_SPACE["normalizations"],
                 dropouts=DEFAULT_SPACE["dropouts"],
                 learning_rate=DEFAULT_SPACE["learning_rate"],
                 learning_rate_step=None,
                 convs_per_block=2):
        self.depths = _check_tuple("depths", depths, _positive_int,
                                   "integers >= 1")
        self.filter_sizes = _check_tuple("filter_sizes", filter_sizes,
                                         _positive_int, "integers >= 1")
        self.strides = _check_tuple("strides", strides, _positive_int,
                                    "integers >= 1")
        self.paddings = _check_tuple("paddings", paddings, _padding,
                                     "'same', 'valid' or integers >= 0")
        self.poolings = _check_tuple("poolings", poolings, _pooling,
                                     "'max2', 'max3', 'avg2' or None")
        self.filters = _check_tuple("filters", filters, _positive_int,
                                    "integers >= 1")
        self.normalizations = _check_tuple(
            "normalizations", normalizations, _normalization,
            "names among " + ", ".join(map(repr, _NORMALIZATIONS)))
        self.dropouts = _check_tuple("dropouts", dropouts, _rate,
                                     "rates in [0, 1)")
        self.learning_rate = _check_learning_rate(learning_rate)
        if learning_rate_step is not None:
            learning_rate_step = _validation.check_float(
                "learning_rate_step", learning_rate_step, 1.0, None,
                min_open=True)
        self.learning_rate_step = learning_rate_step
        self.convs_per_block = _validation.check_positive_int(
            "convs_per_block", convs_per_block)

    @classmethod
    def from_config(cls, config):
        """Builds a space from a dict (e.g. parsed JSON); `None` -> defaults."""
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if not isinstance(config, dict):
            _validation.fail("space", "a SearchSpace, a dict of its "
                             "arguments or None", config)
        unknown = sorted(set(config) - set(DEFAULT_SPACE))
        if unknown:
            _validation.fail("space", "a dict with keys among "
                             + ", ".join(DEFAULT_SPACE), config)
        return cls(**config)

    def get_config(self):
        """The constructor arguments, as plain lists and numbers."""
        return {
            "depths": list(self.depths),
            "filter_sizes": list(self.filter_sizes),
            "strides": list(self.strides),
            "paddings": list(self.paddings),
            "poolings": list(self.poolings),
            "filters": list(self.filters),
            "normalizations": list(self.normalizations),
            "dropouts": list(self.dropouts),
            "learning_rate": (list(self.learning_rate)
                              if isinstance(self.learning_rate, tuple)
                              else self.learning_rate),
            "learning_rate_step": self.learning_rate_step,
            "convs_per_block": self.convs_per_block,
        }

    def replace(self, **changes):
        """A copy with some arguments changed."""
        return SearchSpace(**{**self.get_config(), **changes})

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"SearchSpace({args})"

    def conv_options(self, input_shape):
        """The conv configurations each depth allows for `input_shape`.

        Each combination is walked through
        `kerascnn.models.cnn_output_shapes`, the exact stack `build_cnn`
        builds, with the lecture's rule (strict for convs, floored for
        pooling).

        Args:
            input_shape: `(height, width, channels)` of the images.

        Returns:
            A `SpaceReport`.

        Raises:
            ArgumentError: if some depth in `depths` collapses with every
                filter size / stride / padding / pooling combination (the
                message lists the feasible depths and one failure).
        """
        from kerascnn.models import cnn_output_shapes

        input_shape = check_input_shape(input_shape)
        options, examples = {}, {}
        total = 0
        for depth in self.depths:
            valid = []
            for filter_size, stride, padding, pooling in itertools.product(
                    self.filter_sizes, self.strides, self.paddings,
                    self.poolings):
                total += 1
                try:
                    cnn_output_shapes(
                        input_shape, depth=depth, filter_size=filter_size,
                        stride=stride, padding=padding, pooling=pooling,
                        convs_per_block=self.convs_per_block)
                except _validation.ArgumentError as error:
                    examples.setdefault(depth, str(error))
                    continue
                valid.append(ConvConfig(filter_size, stride, padding, pooling))
            options[depth] = valid
        infeasible = [d for d in self.depths if not options[d]]
        if infeasible:
            feasible = [d for d in self.depths if options[d]]
            height, width = tuple(input_shape)[:2]
            _validation.fail(
                "depths",
                f"depths that at least one filter size / stride / padding "
                f"combination supports for {height}x{width} inputs: depth "
                f"{infeasible[0]} collapses with every combination (e.g. "
                f"{_shorten(examples[infeasible[0]])}); feasible depths here: "
                f"{feasible or 'none'}",
                self.depths,
            )
        valid_count = sum(len(v) for v in options.values())
        return SpaceReport(options, total, valid_count, total - valid_count,
                           examples)

    def encoded_options(self, input_shape):
        """`conv_options` as the strings `CNNHyperModel` draws, per depth."""
        report = self.conv_options(input_shape)
        with_pooling = len(self.poolings) > 1
        return {depth: [encode_conv(c, with_pooling) for c in configs]
                for depth, configs in report.options.items()}, report

    def size(self, input_shape):
        """Number of distinct valid configurations (learning rate excluded)."""
        report = self.conv_options(input_shape)
        return report.valid * len(self.filters) * len(
            self.normalizations) * len(self.dropouts)


def check_input_shape(input_shape, name="input_shape"):
    """Checks a `(height, width, channels)` tuple of positive integers."""
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(_validation._is_int(v) and v >= 1 for v in input_shape)):
        _validation.fail(name, "a (height, width, channels) tuple of positive "
                         "integers", input_shape)
    return tuple(int(v) for v in input_shape)


def _shorten(message):
    head = message.split(" Received:")[0]
    head = head.replace("The input is too small or does not tile for this "
                        "stack: ", "")
    return head if len(head) < 220 else head[:217] + "..."


def _check_learning_rate(value):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _validation.check_positive_float("learning_rate", value)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                       and math.isfinite(v) and v > 0 for v in value)
            or value[0] > value[1]):
        _validation.fail("learning_rate", "a float > 0 or a (min, max) pair "
                         "of floats with 0 < min <= max", value)
    low, high = float(value[0]), float(value[1])
    return low if low == high else (low, high)
