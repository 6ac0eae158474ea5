"""Inverted dropout with optional Monte-Carlo inference, and `mc_predict`."""

import keras
import numpy as np
from keras import ops

from kerascnn import _compat, _validation


def _check_noise_shape(noise_shape):
    if noise_shape is None:
        return None
    if isinstance(noise_shape, (str, bytes)) or not hasattr(
            noise_shape, "__iter__"):
        _validation.fail("noise_shape",
                         "None or a tuple of positive integers or None",
                         noise_shape)
    noise_shape = tuple(noise_shape)
    for dim in noise_shape:
        if dim is not None and (not _validation._is_int(dim) or dim < 1):
            _validation.fail("noise_shape",
                             "None or a tuple of positive integers or None",
                             noise_shape)
    return tuple(None if dim is None else int(dim) for dim in noise_shape)


def _check_seed(seed):
    if seed is None:
        return None
    return _validation.check_non_negative_int("seed", seed)


@keras.saving.register_keras_serializable(package="kerascnn")
class InvertedDropout(keras.layers.Dropout):
    """Inverted dropout, optionally kept on at inference (MC dropout).

    At training each unit is kept with probability `p = 1 - rate` and the
    kept units are divided by `p`, so every unit's expected value equals its
    input and inference needs no rescaling (the "inverted dropout" of the
    CS231n lecture: `H *= (rand < p) / p`). At inference the layer is the
    identity, unless `mc_inference=True`: then the units are dropped at
    `predict` time too, and repeated predictions sample the ensemble of
    thinned networks (Monte-Carlo dropout, Gal & Ghahramani 2016) whose
    spread estimates the model's uncertainty; see `mc_predict`.

    What this adds to `keras.layers.Dropout` (which it subclasses): kept
    values are exactly `x / p` (Keras multiplies by `1 / p`, which may differ
    in the last bit), the `mc_inference` switch, `mc_predict`, a rate of 1
    rejected (it would drop everything), and errors in the kerascnn form.

    Args:
        rate: Float in [0, 1), the probability of dropping a unit.
        noise_shape: Optional tuple, the shape of the binary mask broadcast
            against the inputs; `None` entries take the input's size (e.g.
            `(None, 1, 1, None)` drops whole feature maps of an NHWC tensor).
            Defaults to `None` (one draw per unit).
        seed: Optional integer >= 0 for reproducible masks.
        mc_inference: Boolean, whether to keep dropping at inference.
            Defaults to `False`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Tensor of any rank.
        training: Boolean, whether the layer is in training mode (set by
            `fit`). Dropout applies when `training` or `mc_inference` is true.

    Returns:
        A tensor of the same shape as `inputs`.

    Example:

    >>> layer = InvertedDropout(0.5, seed=1)
    >>> out = layer(np.ones((1, 8), "float32"), training=True)
    >>> sorted(set(np.asarray(out)[0].tolist()))  # dropped or 1 / 0.5
    [0.0, 2.0]

    Reference:
        - [Srivastava et al., 2014](https://jmlr.org/papers/v15/srivastava14a.html)
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1506.02142)
    """

    def __init__(self, rate, noise_shape=None, seed=None, mc_inference=False,
                 **kwargs):
        rate = _validation.check_rate("rate", rate)
        noise_shape = _check_noise_shape(noise_shape)
        seed = _check_seed(seed)
        mc_inference = _validation.check_bool("mc_inference", mc_inference)
        super().__init__(rate=rate, noise_shape=noise_shape, seed=seed,
                         **kwargs)
        # Keras' Dropout creates `self.seed_generator` only when rate > 0;
        # `call` returns early for rate 0.
        self.mc_inference = mc_inference

    def call(self, inputs, training=None):
        if self.rate == 0.0 or not (training or self.mc_inference):
            return inputs
        return inverted_dropout(inputs, self.rate, self.noise_shape,
                                self.seed_generator)

    def get_config(self):
        config = super().get_config()
        config["noise_shape"] = (None if self.noise_shape is None
                                 else list(self.noise_shape))
        config["mc_inference"] = self.mc_inference
        return config


def inverted_dropout(inputs, rate, noise_shape, seed_generator):
    """Keeps each unit with probability `1 - rate` and divides it by that.

    `noise_shape` entries that are `None` take the size of `inputs`.
    """
    inputs = ops.convert_to_tensor(inputs)
    keep_prob = 1.0 - rate
    if noise_shape is None:
        shape = ops.shape(inputs)
    else:
        dynamic = ops.shape(inputs)
        shape = tuple(dynamic[i] if dim is None else dim
                      for i, dim in enumerate(noise_shape))
    uniform = keras.random.uniform(shape, seed=seed_generator,
                                   dtype=inputs.dtype)
    keep = ops.less(uniform, ops.cast(keep_prob, inputs.dtype))
    scaled = ops.divide(inputs, ops.cast(keep_prob, inputs.dtype))
    return ops.where(keep, scaled, ops.zeros_like(scaled))


def _mc_layers(model):
    """The layers of `model` (nested too) that can sample at inference."""
    from kerascnn.layers.dropconnect import DropConnectConv2D, DropConnectDense

    kinds = (InvertedDropout, DropConnectDense, DropConnectConv2D)
    return [layer for layer in _compat.flatten_layers(model, include_self=True)
            if isinstance(layer, kinds) and layer.rate > 0]


def mc_predict(model, x, samples=20, batch_size=32):
    """Monte-Carlo dropout prediction: mean and spread over `samples` passes.

    Predicts `x` `samples` times (batch by batch with `predict_on_batch`,
    much cheaper than `predict` per pass) with every `InvertedDropout`,
    `DropConnectDense` and `DropConnectConv2D` layer of the model (nested
    models included) sampling a fresh mask, whatever its `mc_inference`
    setting; the layers' settings are restored afterwards. Other layers stay
    in inference mode (BatchNormalization keeps its moving statistics, which
    `model(x, training=True)` would not). The mean is the MC estimate of the
    prediction, the standard deviation its uncertainty (Gal & Ghahramani,
    2016). Keras has no equivalent.

    Args:
        model: A built `keras.Model` with at least one of those layers with
            `rate > 0`.
        x: Model inputs: an array (or a list/dict of arrays), or a batched
            `tf.data.Dataset` yielding inputs or `(inputs, targets)`.
        samples: Integer >= 2, the number of stochastic passes. Defaults to
            `20`.
        batch_size: Integer >= 1 for array inputs. Defaults to `32`.

    Returns:
        A tuple `(mean, std)` of NumPy arrays shaped like one prediction.

    Raises:
        ArgumentError: if `model` has no dropout layer to sample, or for bad
            `samples` / `batch_size`; raised before any prediction.

    Example:

    >>> mean, std = mc_predict(model, x_test, samples=30)
    >>> uncertain = std.max(axis=-1) > 0.2
    """
    if not isinstance(model, keras.Model):
        _validation.fail("model", "a keras.Model", model)
    samples = _validation.check_int("samples", samples, min_value=2)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    layers = _mc_layers(model)
    if not layers:
        _validation.fail(
            "model",
            "a model with an InvertedDropout, DropConnectDense or "
            "DropConnectConv2D layer of rate > 0",
            f"<model {model.name!r} without one>",
        )
    previous = [layer.mc_inference for layer in layers]
    # The flag is read when the predict function is traced: retrace before
    # and after so that neither this call nor later ones reuse a stale one.
    model.predict_function = None
    try:
        for layer in layers:
            layer.mc_inference = True
        total = total_sq = None
        for _ in range(samples):
            pred = _predict_all(model, x, batch_size)
            if total is None:
                total, total_sq = pred, pred ** 2
            else:
                total, total_sq = total + pred, total_sq + pred ** 2
    finally:
        for layer, flag in zip(layers, previous):
            layer.mc_inference = flag
        model.predict_function = None
    mean = total / samples
    std = np.sqrt(np.maximum(total_sq / samples - mean ** 2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def _predict_all(model, x, batch_size):
    """One pass of `model` over `x`, as float64 NumPy.

    `predict_on_batch` per batch: `model.predict` rebuilds its data adapter
    on every call, which dominates the cost of many small passes.
    """
    if hasattr(x, "as_numpy_iterator"):  # a tf.data.Dataset
        batches = (element[0] if isinstance(element, tuple) else element
                   for element in x)
    else:
        arrays = keras.tree.map_structure(np.asarray, x)
        size = len(keras.tree.flatten(arrays)[0])
        batches = (keras.tree.map_structure(
            lambda a, i=start: a[i:i + batch_size], arrays)
            for start in range(0, size, batch_size))
    outputs = [np.asarray(model.predict_on_batch(batch), dtype=np.float64)
               for batch in batches]
    return np.concatenate(outputs, axis=0)
