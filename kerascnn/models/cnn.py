"""A CNN builder that follows the lectures' design advice and checks its shapes.

`build_cnn` assembles the classic "conv blocks, then a small fully connected
classifier" network of the lectures as a plain functional `keras.Model`:

    [augmentation] -> [normalizer] ->
    depth x ( convs_per_block x (conv -> norm -> activation) -> pool ) ->
    flatten (or global average pool) -> dense -> dropout -> softmax

`cnn_output_shapes` walks the same stack with the lecture's output-volume
formula `W2 = (W1 - F + 2P) / S + 1` before a single layer is built, so an
input that is too small for the requested depth is reported with the name of
the layer where the size collapses, instead of Keras' negative-dimension error.
"""

import keras

from kerascnn import _validation
from kerascnn.core import settings
from kerascnn.utils.conv_arithmetic import conv_output_size

NORMALIZATIONS = (
    "auto",
    "batch",
    "sync_batch",
    "group",
    "layer",
    "instance",
    "none",
)
"""Values accepted by `build_cnn(normalization=...)`."""

POOLINGS = settings.POOLINGS
"""Values accepted by `build_cnn(pooling=...)` and `cnn_output_shapes`."""

HEADS = ("auto", "flatten", "gap")
"""Values accepted by `build_cnn(head=...)`."""

# head="auto": flatten while the last feature map holds at most this many
# values (7x7x64 = 3,136 for 28x28 digits, 8x8x64 = 4,096 for 32x32 images
# at the default depth), global average pooling above it (the hidden dense
# layer would need millions of weights).
AUTO_FLATTEN_MAX = 8192

AUTO_DEPTH_TARGET = 4
"""`depth="auto"` adds blocks until the feature map's short side is at most
this many pixels (28x28 digits: 14, 7, 4, so 3 blocks)."""

AUTO_DEPTH_RANGE = (2, 3)
"""`depth="auto"` stays within these block counts: at least 2 (8x8 digits
get 2x2 maps, as with the fixed default) and at most 3 (large images then
end in global average pooling, and the compute stays bounded on a CPU)."""

# Pooling name -> (layer class name, window, stride). Keras pools with
# padding="valid" and floors the output size.
_POOL_SPECS = {
    "max2": ("MaxPooling2D", 2, 2),
    "max3": ("MaxPooling2D", 3, 2),
    "avg2": ("AveragePooling2D", 2, 2),
}


def _conv_stride(stride, pooling, conv, convs_per_block):
    """Stride of conv `conv` (1-based) of a block: `stride` for the first,
    1 for the others, times 2 for the last one when `pooling="strided"`
    (the all-convolutional net of Springenberg et al. 2015, "Striving for
    simplicity": a stride-2 conv learns its downsampling where a pooling
    layer fixes it, and costs a quarter of a stride-1 conv)."""
    value = stride if conv == 1 else 1
    if pooling == "strided" and conv == convs_per_block:
        value *= 2
    return value


# The per-replica batch below which "auto" picks GroupNormalization: Wu & He
# (2018), Figure 1, show BatchNorm's error growing quickly under 16 images.
AUTO_GROUP_NORM_BELOW = 16

# Activations for which He initialisation is the right variance scaling.
_HE_ACTIVATIONS = frozenset(
    ("relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "swish", "mish",
     "softplus", "hard_silu", "hard_swish")
)


# -- augmentation wrapper ----------------------------------------------------


@keras.saving.register_keras_serializable(package="kerascnn",
                                          name="TrainingOnly")
class _TrainingOnly(keras.layers.Layer):
    """Runs a wrapped layer only when `training=True`, else the identity.

    Keras' random image layers default to `training=True` in `call`, and
    `model.export()` calls the model without a `training` argument, so a
    functional model holding them would augment inside its SavedModel's
    `serve`. Wrapped, augmentation is active in `fit` only.

    Args:
        layer: The Keras layer (or `keras.Sequential`) to run in training.
    """

    def __init__(self, layer, **kwargs):
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        if not isinstance(layer, keras.layers.Layer):
            _validation.fail("layer", "a Keras layer", layer)
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)

    def call(self, inputs, training=None):
        if training:
            return self.layer(inputs, training=True)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(),
                "layer": keras.saving.serialize_keras_object(self.layer)}


# -- argument checks ---------------------------------------------------------


def _check_input_shape(input_shape):
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(_validation._is_int(v) and v >= 1 for v in input_shape)
    ):
        _validation.fail(
            "input_shape",
            "a (height, width, channels) tuple of positive integers",
            input_shape,
        )
    return tuple(int(v) for v in input_shape)


def _check_padding(padding):
    if isinstance(padding, str):
        return _validation.check_option("padding", padding, ("same", "valid"))
    if not _validation._is_int(padding) or padding < 0:
        _validation.fail(
            "padding", "'same', 'valid' or an integer >= 0", padding
        )
    return int(padding)


def _check_choice(name, value, options):
    """`check_option` that also names the options for non-string values."""
    if not isinstance(value, str):
        _validation.fail(name, "one of " + ", ".join(map(repr, options)),
                         value)
    return _validation.check_option(name, value, options)


def _normalize_pooling(pooling):
    if pooling is None:
        return None
    if isinstance(pooling, str) and pooling.lower() == "none":
        return None
    return _check_choice("pooling", pooling, POOLINGS[:-1])


def auto_depth(input_shape):
    """The number of conv blocks `depth="auto"` means for `input_shape`.

    Each block halves the feature map (with `"same"` padding and stride-1
    first convs); blocks are added until its short side is at most
    `AUTO_DEPTH_TARGET` (4) pixels, within `AUTO_DEPTH_RANGE` (2 to 3): 3 for
    28x28 digits and 32x32 photographs, 2 for 8x8 digits, 3 (then global
    average pooling) for large images. Measured on mnist5k (docs/training.md,
    "Defaults"): 3 blocks down to 4x4 beat 2 blocks down to 7x7 at the same
    epochs.

    Args:
        input_shape: `(height, width, channels)` of the images.

    Returns:
        An integer in `AUTO_DEPTH_RANGE`.
    """
    height, width, _ = _check_input_shape(input_shape)
    side, depth = min(height, width), 0
    low, high = AUTO_DEPTH_RANGE
    while side > AUTO_DEPTH_TARGET and depth < high:
        side, depth = -(-side // 2), depth + 1
    return max(low, depth)


def _check_depth(depth, input_shape):
    if isinstance(depth, str) and depth.lower() == "auto":
        return auto_depth(input_shape)
    if not _validation._is_int(depth) or depth < 1:
        _validation.fail("depth", "an integer >= 1 or 'auto'", depth)
    return int(depth)


def _check_structure(input_shape, depth, filter_size, stride, padding,
                     pooling, convs_per_block, filters):
    input_shape = _check_input_shape(input_shape)
    return dict(
        input_shape=input_shape,
        depth=_check_depth(depth, input_shape),
        filter_size=_validation.check_positive_int("filter_size", filter_size),
        stride=_validation.check_positive_int("stride", stride),
        padding=_check_padding(padding),
        pooling=_normalize_pooling(pooling),
        convs_per_block=_validation.check_positive_int(
            "convs_per_block", convs_per_block
        ),
        filters=_validation.check_positive_int("filters", filters),
    )


def _block_filters(filters, block):
    """Filters of block `block` (1-based): doubled with every block."""
    return filters * 2 ** (block - 1)


# -- shape walk --------------------------------------------------------------


def _formula(size, window, stride, pad):
    span = size - window + 2 * pad
    return (f"({size} - {window} + 2*{pad:g}) / {stride} + 1 = "
            f"{span / stride + 1:g}")


def _step(layer, sizes, window, stride, padding, strict, received):
    """Applies one conv/pool window to (height, width) or raises naming it."""
    outputs, problems = [], []
    for axis, size in zip(("height", "width"), sizes):
        try:
            outputs.append(conv_output_size(
                size, window, stride=stride, padding=padding, strict=strict,
                name=layer,
            ))
        except _validation.ArgumentError:
            pad = 0 if padding == "valid" else padding
            problems.append(f"{axis} {_formula(size, window, stride, pad)}")
    if problems:
        raise _validation.ArgumentError(
            f"The input is too small or does not tile for this stack: the "
            f"output size of layer `{layer}` (W1 - F + 2P) / S + 1 must be "
            f"a positive integer, got {'; '.join(problems)} (input to `{layer}`: "
            f"{sizes[0]}x{sizes[1]}). Use a larger input, a smaller `depth`, "
            f"`padding='same'` or another `stride`/`filter_size`. Received: "
            f"{received}"
        )
    return tuple(outputs)


def cnn_output_shapes(input_shape, depth=2, filter_size=3, stride=1,
                      padding="same", pooling="max2", convs_per_block=2,
                      filters=32):
    """Output shape of every conv, padding and pooling layer of `build_cnn`.

    Walks the conv stack that `build_cnn` would build, with the lectures'
    output-volume rule `W2 = (W1 - F + 2P) / S + 1` for each axis: for
    convolutions (`"valid"` or integer padding) `W1 - F + 2P` must be
    divisible by `S` (strict), pooling windows floor like Keras. Keras itself
    floors silently and reports a collapsed stack as a negative dimension
    deep inside `build`; this names the layer and the numbers first.

    Args:
        input_shape: `(height, width, channels)` of the images.
        depth: Integer >= 1, the number of conv blocks, or `"auto"`
            (`auto_depth(input_shape)`). Defaults to `2`.
        filter_size: Integer >= 1, the conv window F. Defaults to `3`.
        stride: Integer >= 1, the stride S of the first conv of every block
            (the other convs use stride 1). Defaults to `1`.
        padding: `"same"`, `"valid"` or an integer P (zero padding of P on
            each side, then a `"valid"` conv). Defaults to `"same"`.
        pooling: One of `POOLINGS`: `"max2"` (2x2, stride 2), `"max3"` (3x3,
            stride 2, overlapping), `"avg2"`, `"strided"` (the last conv of
            each block strides 2, no pooling layer) or `None`. Defaults to
            `"max2"`.
        convs_per_block: Integer >= 1, convs per block. Defaults to `2`.
        filters: Integer >= 1, filters of the first block (doubled in each
            following block). Defaults to `32`.

    Returns:
        A dict, in layer order, from layer name (`"input"`,
        `"block1_pad1"`, `"block1_conv1"`, ..., `"block1_pool"`, ...) to its
        `(height, width, channels)` output.

    Raises:
        ArgumentError: for an invalid argument, or naming the first layer
            whose output size is not a positive integer (with the formula for
            height and width).

    Example:

    >>> cnn_output_shapes((28, 28, 1), depth=2)["block2_pool"]
    (7, 7, 64)
    """
    args = _check_structure(input_shape, depth, filter_size, stride, padding,
                            pooling, convs_per_block, filters)
    received = ", ".join(
        f"{key}={args[key]!r}" for key in
        ("input_shape", "depth", "filter_size", "stride", "padding",
         "pooling", "convs_per_block")
    )
    height, width, channels = args["input_shape"]
    shapes = {"input": (height, width, channels)}
    sizes = (height, width)
    padding = args["padding"]
    for block in range(1, args["depth"] + 1):
        channels = _block_filters(args["filters"], block)
        for conv in range(1, args["convs_per_block"] + 1):
            conv_stride = _conv_stride(args["stride"], args["pooling"], conv,
                                       args["convs_per_block"])
            if isinstance(padding, int):
                sizes = (sizes[0] + 2 * padding, sizes[1] + 2 * padding)
                shapes[f"block{block}_pad{conv}"] = sizes + (
                    shapes[list(shapes)[-1]][2],)
                conv_padding = "valid"
            else:
                conv_padding = padding
            name = f"block{block}_conv{conv}"
            sizes = _step(name, sizes, args["filter_size"], conv_stride,
                          conv_padding, True, received)
            shapes[name] = sizes + (channels,)
        if args["pooling"] in _POOL_SPECS:
            _, window, pool_stride = _POOL_SPECS[args["pooling"]]
            name = f"block{block}_pool"
            sizes = _step(name, sizes, window, pool_stride, "valid", False,
                          received)
            shapes[name] = sizes + (channels,)
    return shapes


# -- layer factories ---------------------------------------------------------


def _resolve_normalization(normalization, batch_size, num_replicas):
    """Returns (resolved name, one-line reason)."""
    if normalization != "auto":
        return normalization, f"normalization={normalization!r} as requested"
    if batch_size is None:
        return "batch", (
            "normalization='auto' -> BatchNormalization (batch_size=None: "
            "assuming Keras' default batch of 32 >= "
            f"{AUTO_GROUP_NORM_BELOW})"
        )
    per_replica = batch_size / num_replicas
    if per_replica < AUTO_GROUP_NORM_BELOW:
        return "group", (
            f"normalization='auto' -> GroupNormalization (per-replica batch "
            f"{per_replica:g} < {AUTO_GROUP_NORM_BELOW}: batch statistics are "
            f"too noisy; Wu & He 2018, Group Normalization)"
        )
    return "batch", (
        f"normalization='auto' -> BatchNormalization (per-replica batch "
        f"{per_replica:g} >= {AUTO_GROUP_NORM_BELOW})"
    )


def group_count(channels):
    """Groups `normalization="group"` uses for `channels` channels.

    Wu & He (2018) use G = 32 with at least 2 channels per group (their
    first ResNet stage has 64 channels). `groups="auto"` alone would give 32
    groups of one channel, i.e. InstanceNorm, for the 8-32 filters of a small
    CNN, so the count is the largest divisor of `channels` that is
    <= min(32, channels // 2) (1, LayerNorm, for a single channel).
    """
    from kerascnn.layers.group_normalization import auto_groups

    return auto_groups(channels, max(1, min(32, channels // 2)))


def _norm_layer(kind, name, channels):
    """Keras' own layers only, so the model loads without kerascnn."""
    if kind == "batch":
        return keras.layers.BatchNormalization(name=name)
    if kind == "sync_batch":
        return keras.layers.BatchNormalization(synchronized=True, name=name)
    # keras.layers.GroupNormalization computes what kerascnn's does (same
    # epsilon 1e-3, per-group statistics over H, W and the group's channels;
    # groups=channels is InstanceNorm, groups=1 LayerNorm over H, W, C).
    groups = {"group": group_count(channels), "layer": 1,
              "instance": channels}[kind]
    return keras.layers.GroupNormalization(groups=groups, name=name)


def _initializer(activation):
    name = activation if isinstance(activation, str) else getattr(
        activation, "__name__", "")
    if name == "selu":
        return "lecun_normal"
    return "he_normal" if name in _HE_ACTIVATIONS else "glorot_uniform"


def _check_activation(activation):
    if isinstance(activation, str) and activation:
        try:
            keras.activations.get(activation)
        except (ValueError, TypeError):
            pass
        else:
            return activation
    _validation.fail("activation", "the name of a Keras activation", activation)


def _check_normalizer(normalizer, channels):
    """Returns a Normalization layer with its statistics in its config.

    An adapted layer keeps its statistics in weights that only
    `finalize_state` turns into the constants `call` uses; a model copied with
    `keras.models.clone_model` + `set_weights` (how models are moved into a
    distribution strategy) then normalizes with zeros and ones. The returned
    layer carries `mean` and `variance` as constructor arguments instead, so
    any copy normalizes identically.
    """
    if normalizer is None:
        return None
    if isinstance(normalizer, keras.layers.Normalization):
        if normalizer.input_mean is not None:
            return normalizer
        if not normalizer.built or getattr(normalizer, "mean", None) is None:
            _validation.fail(
                "normalizer", "an adapted keras.layers.Normalization (call "
                "`adapt(x_train)` first), an array of training images or None",
                normalizer,
            )
        return _fixed_normalizer(normalizer, normalizer.name)
    if isinstance(normalizer, keras.layers.Layer):
        _validation.fail(
            "normalizer", "a keras.layers.Normalization layer, an array of "
            "training images or None", normalizer,
        )
    images = _validation.check_images("normalizer", normalizer)
    if images.shape[-1] != channels:
        _validation.fail(
            "normalizer", f"training images with {channels} channels (as "
            "`input_shape`)", f"array of shape {images.shape}",
        )
    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(images.astype("float32"))
    return _fixed_normalizer(layer, "normalizer")


def _fixed_normalizer(adapted, name):
    return keras.layers.Normalization(
        axis=adapted.axis,
        mean=keras.ops.convert_to_numpy(adapted.adapt_mean),
        variance=keras.ops.convert_to_numpy(adapted.adapt_variance),
        invert=adapted.invert,
        name=name,
    )


def _check_strategy(strategy, num_replicas):
    num_replicas = _validation.check_positive_int("num_replicas", num_replicas)
    if strategy is None:
        return num_replicas
    in_sync = getattr(strategy, "num_replicas_in_sync", None)
    if not _validation._is_int(in_sync) or not hasattr(strategy, "scope"):
        _validation.fail("strategy", "a tf.distribute.Strategy or None",
                         strategy)
    if num_replicas not in (1, in_sync):
        raise _validation.ArgumentError(
            "Argument `num_replicas` must be 1 or equal to "
            "`strategy.num_replicas_in_sync`. Received: "
            f"num_replicas={num_replicas}, strategy with {in_sync} replicas"
        )
    return int(in_sync)


# -- the builder -------------------------------------------------------------


def build_cnn(input_shape, num_classes, depth=2, filters=32, filter_size=3,
              stride=1, padding="same", convs_per_block=2, pooling="max2",
              normalization="auto", batch_size=None, num_replicas=1,
              dropout=0.5, dropconnect=0.0, max_norm=None, l1=0.0, l2=0.0,
              dense_units=128, normalizer=None, augmentation=None,
              activation="relu", name="kerascnn_cnn", strategy=None,
              head="auto", block_dropout=0.0, verbose=True):
    """Builds a CNN classifier from the lectures' design advice.

    The network is `depth` conv blocks, each `convs_per_block` times
    conv -> normalization -> activation and then a pooling layer, with the
    filters doubling from block to block (`filters * 2**(block - 1)`: early
    layers compute few basic features, deeper ones combine many), followed by
    a flatten (or, for large feature maps, global-average-pool) head, one
    hidden dense layer, dropout and a softmax. Convs and the hidden dense layer use He
    initialisation for ReLU-like activations.

    What it adds over writing the `keras.Sequential` by hand: the conv stack
    is checked with the output-volume formula first (`cnn_output_shapes`) so
    an input too small for `depth` is a clear error naming the layer; every
    argument is validated; the normalization is picked from the per-replica
    batch size (GroupNormalization under 16 images per replica, Wu & He 2018);
    L1/L2/elastic-net, max-norm, dropout and DropConnect are one argument
    each; the normalizer and augmentation live inside the model, so it takes
    raw pixels and exports as one SavedModel. Layer names are stable
    (`block{i}_conv{j}`, `block{i}_norm{j}`, `block{i}_act{j}`,
    `block{i}_pad{j}`, `block{i}_pool`, `block{i}_dropout`, `head_pool`,
    `head_dense`, `head_dropout`, `logits`, `predictions`) for tuning.

    Args:
        input_shape: `(height, width, channels)` of the raw images.
        num_classes: Integer >= 2, the number of classes.
        depth: Integer >= 1, the number of conv blocks, or `"auto"`: blocks
            until the feature map's short side is at most 4, from 2 to 3
            (`auto_depth`: 3 for 28x28 or 32x32 images, 2 for 8x8).
            Defaults to `2`.
        filters: Integer >= 1, filters of the first block; block `i` has
            `filters * 2**(i - 1)`. Defaults to `32`.
        filter_size: Integer >= 1, the square conv window (3x3 is the
            lectures' default: stacks of small filters beat one large).
            Defaults to `3`.
        stride: Integer >= 1, the stride of the first conv of each block; the
            others use stride 1. Defaults to `1`.
        padding: `"same"`, `"valid"` or an integer P: `ZeroPadding2D(P)`
            then a `"valid"` conv. Defaults to `"same"`.
        convs_per_block: Integer >= 1. Defaults to `2`.
        pooling: `"max2"` (2x2, stride 2), `"max3"` (3x3, stride 2,
            overlapping), `"avg2"` (2x2 average), `"strided"` (no pooling
            layer: the block's last conv strides 2, Springenberg et al.
            2015; the same output size as `"max2"` with "same" padding, and
            less compute, since the last conv runs at a quarter of the
            positions) or `None`. Defaults to `"max2"`.
        normalization: One of `NORMALIZATIONS`: `"batch"`, `"sync_batch"`
            (`BatchNormalization(synchronized=True)` across replicas),
            `"group"` (`keras.layers.GroupNormalization` with
            `group_count(filters)` groups: at most 32, at least 2 channels
            each),
            `"layer"` (`groups=1`), `"instance"` (one group per channel),
            `"none"` or
            `"auto"`: GroupNormalization when `batch_size / num_replicas`
            < 16, else BatchNormalization; the choice is printed (if
            `verbose`) and recorded in `model.kerascnn_config`. Defaults to
            `"auto"`.
        batch_size: Integer >= 1 or `None`, the global training batch size
            used by `"auto"`; `None` assumes Keras' default of 32. Defaults
            to `None`.
        num_replicas: Integer >= 1, replicas the batch is split over.
            Defaults to `1` (or `strategy.num_replicas_in_sync`).
        dropout: Float in [0, 1), the rate of `keras.layers.Dropout` (inverted
            dropout) after the hidden dense layer. Defaults to `0.5` (with
            the flatten head; chosen by measurement, docs/training.md).
        dropconnect: Float in [0, 1). If > 0 the hidden dense layer is a
            kerascnn `DropConnectDense` with this rate (Wan et al. 2013).
            Defaults to `0.0`.
        max_norm: `None` or a float > 0: `keras.constraints.MaxNorm` on
            every conv kernel (per filter: `axis=[0, 1, 2]`) and dense kernel
            (per unit: `axis=0`). Defaults to `None`.
        l1: Float >= 0, L1 kernel penalty of every conv and dense layer.
            Defaults to `0.0`.
        l2: Float >= 0, L2 kernel penalty (both > 0: elastic net). Defaults
            to `0.0`.
        dense_units: Integer >= 0, units of the hidden dense layer; `0`
            drops it (dropout then acts on the pooled features). Defaults to
            `128`.
        normalizer: `None`, an adapted `keras.layers.Normalization`, or an
            array of training images on which one is adapted per channel. It
            follows the augmentation, so the model takes raw pixels.
            Defaults to `None`.
        augmentation: `None` or a Keras layer (e.g. a `keras.Sequential` of
            random layers, active only in training) applied to the raw input.
            Defaults to `None`.
        activation: Name of a Keras activation for convs and the hidden
            dense layer. Defaults to `"relu"`.
        name: Model name. Defaults to `"kerascnn_cnn"`.
        strategy: `None` or a `tf.distribute.Strategy`: the model is built in
            its scope and its replica count used by `"auto"`. Defaults to
            `None`.
        head: `"flatten"` (the classic flatten -> fully connected: learns
            fast on small images), `"gap"` (global average pooling: few
            parameters, does not depend on the input size, but learns slowly
            in short runs) or `"auto"`: `"flatten"` when the last feature map
            holds at most `AUTO_FLATTEN_MAX` (8,192) values, else `"gap"`;
            the choice is recorded as `head_resolved` in
            `model.kerascnn_config`. Defaults to `"auto"`.
        block_dropout: Float in [0, 1), `keras.layers.Dropout` after each block's
            pooling (0 adds none). Defaults to `0.0`.
        verbose: Boolean, print the `"auto"` normalization choice. Defaults
            to `True`.

    Returns:
        A functional `keras.Model` (not compiled) from raw images to class
        probabilities, with a `kerascnn_config` dict attribute holding the
        validated arguments, `normalization_resolved`, `normalization_reason`
        and `output_shapes` (from `cnn_output_shapes`).

    Raises:
        ArgumentError: for any invalid argument, or when the conv stack does
            not fit the input (naming the layer), before any layer is built.

    Example:

    >>> model = build_cnn((28, 28, 1), 10, batch_size=8, verbose=False)
    >>> model.kerascnn_config["normalization_resolved"]
    'group'

    Reference:
        Wu & He, "Group Normalization", ECCV 2018.
    """
    structure = _check_structure(input_shape, depth, filter_size, stride,
                                 padding, pooling, convs_per_block, filters)
    num_classes = _validation.check_int("num_classes", num_classes, 2)
    normalization = _check_choice("normalization", normalization,
                                  NORMALIZATIONS)
    if batch_size is not None:
        batch_size = _validation.check_positive_int("batch_size", batch_size)
    num_replicas = _check_strategy(strategy, num_replicas)
    dropout = _validation.check_rate("dropout", dropout)
    dropconnect = _validation.check_rate("dropconnect", dropconnect)
    block_dropout = _validation.check_rate("block_dropout", block_dropout)
    if max_norm is not None:
        max_norm = _validation.check_positive_float("max_norm", max_norm)
    l1 = _validation.check_float("l1", l1, 0.0)
    l2 = _validation.check_float("l2", l2, 0.0)
    dense_units = _validation.check_non_negative_int("dense_units", dense_units)
    if dropconnect > 0 and dense_units == 0:
        raise _validation.ArgumentError(
            "Argument `dropconnect` needs a hidden dense layer "
            "(`dense_units` > 0). Received: "
            f"dropconnect={dropconnect}, dense_units=0"
        )
    if augmentation is not None and not isinstance(
            augmentation, keras.layers.Layer):
        _validation.fail("augmentation", "a Keras layer or None", augmentation)
    activation = _check_activation(activation)
    name = _validation.check_string("name", name)
    head = _check_choice("head", head, HEADS)
    verbose = _validation.check_bool("verbose", verbose)
    # The shape walk comes before any layer is built (or the normalizer
    # adapted): a stack that does not fit the input fails in milliseconds.
    shapes = cnn_output_shapes(**structure)
    normalizer = _check_normalizer(normalizer, structure["input_shape"][-1])

    resolved, reason = _resolve_normalization(
        normalization, batch_size, num_replicas)
    if verbose and normalization == "auto":
        print(f"kerascnn.build_cnn: {reason}")
    last = shapes[list(shapes)[-1]]
    head_resolved = head
    if head == "auto":
        head_resolved = ("flatten" if last[0] * last[1] * last[2]
                         <= AUTO_FLATTEN_MAX else "gap")

    config = dict(structure, num_classes=num_classes,
                  normalization=normalization, batch_size=batch_size,
                  num_replicas=num_replicas, dropout=dropout,
                  dropconnect=dropconnect, max_norm=max_norm, l1=l1, l2=l2,
                  dense_units=dense_units, activation=activation, name=name,
                  head=head, head_resolved=head_resolved,
                  block_dropout=block_dropout,
                  normalizer=normalizer is not None,
                  augmentation=augmentation is not None,
                  normalization_resolved=resolved,
                  normalization_reason=reason, output_shapes=shapes)

    if strategy is not None:
        with strategy.scope():
            model = _assemble(config, normalizer, augmentation)
    else:
        model = _assemble(config, normalizer, augmentation)
    # A plain dict (Keras would wrap an assigned dict in a TrackedDict).
    object.__setattr__(model, "kerascnn_config", config)
    return model


def _assemble(config, normalizer, augmentation):
    initializer = _initializer(config["activation"])

    def kernel_kwargs(conv=False):
        kwargs = {"kernel_initializer": initializer}
        if config["l1"] or config["l2"]:
            kwargs["kernel_regularizer"] = keras.regularizers.L1L2(
                l1=config["l1"], l2=config["l2"])
        if config["max_norm"] is not None:
            # Keras' MaxNorm with the per-unit axes: every input axis of the
            # kernel, (0, 1, 2) for a (h, w, in, out) conv kernel (Keras'
            # default axis=0 would bound each column of each filter).
            kwargs["kernel_constraint"] = keras.constraints.MaxNorm(
                config["max_norm"], axis=[0, 1, 2] if conv else 0)
        return kwargs

    normalized = config["normalization_resolved"] != "none"
    inputs = keras.Input(shape=config["input_shape"], name="image")
    x = inputs
    if augmentation is not None:
        x = _TrainingOnly(augmentation, name="augmentation")(x)
    if normalizer is not None:
        x = normalizer(x)
    padding = config["padding"]
    for block in range(1, config["depth"] + 1):
        block_filters = _block_filters(config["filters"], block)
        for conv in range(1, config["convs_per_block"] + 1):
            if isinstance(padding, int):
                x = keras.layers.ZeroPadding2D(
                    padding, name=f"block{block}_pad{conv}")(x)
            x = keras.layers.Conv2D(
                block_filters, config["filter_size"],
                strides=_conv_stride(config["stride"], config["pooling"],
                                     conv, config["convs_per_block"]),
                padding="valid" if isinstance(padding, int) else padding,
                # A bias before a normalization with a learned offset is
                # redundant.
                use_bias=not normalized,
                name=f"block{block}_conv{conv}",
                **kernel_kwargs(conv=True),
            )(x)
            if normalized:
                x = _norm_layer(config["normalization_resolved"],
                                f"block{block}_norm{conv}", block_filters)(x)
            x = keras.layers.Activation(
                config["activation"], name=f"block{block}_act{conv}")(x)
        if config["pooling"] in _POOL_SPECS:
            kind, window, pool_stride = _POOL_SPECS[config["pooling"]]
            x = getattr(keras.layers, kind)(
                pool_size=window, strides=pool_stride, padding="valid",
                name=f"block{block}_pool")(x)
        if config["block_dropout"] > 0:
            x = keras.layers.Dropout(
                config["block_dropout"], name=f"block{block}_dropout")(x)

    if config["head_resolved"] == "gap":
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    else:
        x = keras.layers.Flatten(name="head_pool")(x)
    if config["dense_units"]:
        if config["dropconnect"] > 0:
            from kerascnn.layers import DropConnectDense

            x = DropConnectDense(
                config["dense_units"], rate=config["dropconnect"],
                activation=config["activation"], name="head_dense",
                **kernel_kwargs())(x)
        else:
            x = keras.layers.Dense(
                config["dense_units"], activation=config["activation"],
                name="head_dense", **kernel_kwargs())(x)
    if config["dropout"] > 0:
        # keras.layers.Dropout is inverted dropout (kept units scaled by
        # 1 / (1 - rate) in training), as kerascnn's InvertedDropout.
        x = keras.layers.Dropout(config["dropout"], name="head_dropout")(x)
    output_kwargs = kernel_kwargs()
    output_kwargs["kernel_initializer"] = "glorot_uniform"
    x = keras.layers.Dense(config["num_classes"], name="logits",
                           **output_kwargs)(x)
    # float32 softmax keeps probabilities exact under mixed precision.
    outputs = keras.layers.Activation(
        "softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=config["name"])
