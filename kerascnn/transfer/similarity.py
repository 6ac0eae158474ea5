"""How similar the target data is to the backbone's source data."""

import collections

import keras
import numpy as np

from kerascnn import _validation
from kerascnn.transfer import blocks as blocks_lib

Similarity = collections.namedtuple(
    "Similarity",
    ["cosine", "distance", "layer", "route", "source_mean", "target_mean"])
Similarity.__doc__ = """The result of `measure_similarity`.

Fields:
    cosine: Cosine similarity of the source and target mean feature
        vectors, in [-1, 1]; 1 for the same direction.
    distance: Standardized distance of the means: the root mean square over
        channels of `(target_mean - source_mean) / source_std`. It does not
        change when a channel is rescaled; 0 for equal means.
    layer: Name of the layer whose features were compared.
    route: `"source sample"` or `"batchnorm statistics"`.
    source_mean, target_mean: The two mean feature vectors (NumPy).
"""

_EPSILON = 1e-6


def _feature_tensor(base, layer_name):
    layer = base.get_layer(layer_name)
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer.input
    return layer.output


def default_layer(backbone, source_images=False):
    """The layer `measure_similarity` compares by default.

    With a source sample (`source_images=True`): the last layer with a
    spatial (4-D) output, whose features are averaged over positions
    (pooled spatial features: the flattened top of a small CNN mixes
    position and content, and read there digits 5-9 looked dissimilar to a
    0-4 source; pooled, they are similar). Without one: the last
    BatchNormalization layer (its input features), whose moving statistics
    describe the source; else the last layer of the backbone.
    """
    top_level = [layer for layer in backbone.base.layers
                 if not isinstance(layer, keras.layers.InputLayer)]
    if source_images:
        spatial = [layer for layer in top_level
                   if _rank(layer) == 4]
        if spatial:
            return spatial[-1].name
    batchnorms = blocks_lib.batchnorm_layers(backbone.base)
    names = {layer.name for layer in top_level}
    batchnorms = [bn for bn in batchnorms if bn.name in names]
    if batchnorms:
        return batchnorms[-1].name
    return backbone.base.layers[-1].name


def _rank(layer):
    shape = blocks_lib._output_shape(layer)
    return None if shape is None else len(shape)


def _moments(model, images, batch_size):
    """Per-channel mean and variance over images and positions."""
    total, total_sq, count = None, None, 0
    for start in range(0, len(images), batch_size):
        out = np.asarray(model(images[start:start + batch_size],
                               training=False), dtype="float64")
        out = out.reshape(-1, out.shape[-1])
        s, sq = out.sum(axis=0), (out ** 2).sum(axis=0)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += len(out)
    mean = total / count
    return mean, np.maximum(total_sq / count - mean ** 2, 0.0)


def _sample(images, max_samples, seed):
    if len(images) <= max_samples:
        return images
    index = np.random.default_rng(seed).choice(len(images), max_samples,
                                               replace=False)
    return images[np.sort(index)]


def measure_similarity(backbone, target_images, source_images=None,
                       layer=None, max_samples=512, batch_size=64, seed=0):
    """Compares the mean feature vectors of the source and target data.

    The first tutorial's recipe: pass each image through the backbone,
    average the feature vectors of each data set, compare the two means.
    Source features come from `source_images` when given; without them, from
    what the backbone remembers of its source: the moving mean and variance
    of a BatchNormalization layer are the source data's average features
    (and their spread) at that layer's input. Backbones without
    BatchNormalization (VGG) need `source_images`.

    What it adds to Keras: Keras has no measure of how close new data is to
    a pretrained model's data; this reads it from the model itself.

    Args:
        backbone: A `Backbone` from `get_backbone`.
        target_images: Raw images `(n, height, width, channels)` as the
            backbone takes them.
        source_images: Optional raw images of the source data. Defaults to
            `None` (BatchNormalization route).
        layer: Name of a layer of `backbone.base`; for a
            BatchNormalization layer its input is compared. Defaults to
            `default_layer(backbone)`.
        max_samples: Most images used from each set (a random subset).
            Defaults to `512`.
        batch_size: Batch size of the forward passes. Defaults to `64`.
        seed: Seed of the subset. Defaults to `0`.

    Returns:
        A `Similarity`.
    """
    if getattr(backbone, "base", None) is None:
        _validation.fail("backbone", "a kerascnn.transfer.Backbone", backbone)
    max_samples = _validation.check_positive_int("max_samples", max_samples)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    target_images = _check_against(backbone, "target_images", target_images)
    if source_images is not None:
        source_images = _check_against(backbone, "source_images",
                                       source_images)
    names = [l.name for l in backbone.base.layers]
    if layer is None:
        layer = default_layer(backbone, source_images is not None)
    elif layer not in names:
        _validation.fail("layer", f"the name of a layer of {backbone.name}",
                         layer)
    is_bn = isinstance(backbone.base.get_layer(layer),
                       keras.layers.BatchNormalization)
    if source_images is None and not is_bn:
        if not backbone.has_batchnorm:
            raise _validation.ArgumentError(
                "Argument `source_images` must be given for backbone "
                f"{backbone.name!r}: it has no BatchNormalization layers "
                "whose moving statistics describe its source data. "
                "Received: source_images=None")
        _validation.fail(
            "layer", "a BatchNormalization layer when `source_images` is "
            "None", layer)
    tensor = _feature_tensor(backbone.base, layer)
    inner = keras.Model(backbone.base.inputs, tensor)
    inputs = keras.Input(backbone.input_shape)
    features = keras.Model(inputs, inner(backbone.preprocessing(inputs)))
    target_mean, _ = _moments(
        features, _sample(target_images, max_samples, seed), batch_size)
    if source_images is not None:
        source_mean, source_var = _moments(
            features, _sample(source_images, max_samples, seed), batch_size)
        route = "source sample"
    else:
        bn = backbone.base.get_layer(layer)
        source_mean = np.asarray(bn.moving_mean, dtype="float64")
        source_var = np.asarray(bn.moving_variance, dtype="float64")
        route = "batchnorm statistics"
    return Similarity(
        cosine=_cosine(source_mean, target_mean),
        distance=float(np.sqrt(np.mean(
            (target_mean - source_mean) ** 2 / (source_var + _EPSILON)))),
        layer=layer, route=route, source_mean=source_mean,
        target_mean=target_mean)


def _cosine(a, b):
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        return 0.0
    return float(np.dot(a, b) / norm)


def _check_against(backbone, name, images):
    images = _validation.check_images(name, images)
    if tuple(images.shape[1:]) != tuple(backbone.input_shape):
        shape = ", ".join(map(str, backbone.input_shape))
        _validation.fail(
            name, f"images of shape (n, {shape}) as backbone "
            f"{backbone.name!r} takes", f"images of shape {images.shape}")
    return images.astype("float32")
