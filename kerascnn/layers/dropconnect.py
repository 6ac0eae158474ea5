"""DropConnect (Wan et al., 2013): dense and 2-D convolution layers that
drop weights instead of activations at training time."""

import keras
from keras import ops

from kerascnn import _validation
from kerascnn.layers.dropout import _check_seed, inverted_dropout


class _DropConnectMixin:
    """Rate/seed/mc_inference handling shared by the DropConnect layers."""

    def _init_dropconnect(self, rate, seed, mc_inference):
        self.rate = rate
        self.seed = seed
        self.mc_inference = mc_inference
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _dropping(self, training):
        return self.rate > 0.0 and bool(training or self.mc_inference)

    def _dropped_kernel(self):
        kernel = ops.convert_to_tensor(self.kernel)
        return inverted_dropout(kernel, self.rate, None, self.seed_generator)

    def _dropconnect_config(self):
        return {"rate": self.rate, "seed": self.seed,
                "mc_inference": self.mc_inference}


def _check_dropconnect_args(rate, seed, mc_inference):
    return (_validation.check_rate("rate", rate), _check_seed(seed),
            _validation.check_bool("mc_inference", mc_inference))


@keras.saving.register_keras_serializable(package="kerascnn")
class DropConnectDense(_DropConnectMixin, keras.layers.Dense):
    """Dense layer with DropConnect on its kernel (Wan et al., 2013).

    At training every kernel entry is dropped with probability `rate` and
    the kept entries are divided by `1 - rate` ("inverted" scaling), so the
    expected pre-activation equals the full-weight one; at inference the
    full kernel is used and the layer is exactly `keras.layers.Dense`.
    Dropout zeroes activations (a whole row of the next kernel at once);
    DropConnect zeroes single connections, a finer-grained regularizer.
    The bias is never dropped. One kernel mask is drawn per call (per
    training step), shared by the samples of the batch: the paper draws one
    per sample, which costs a kernel copy per sample. Inference uses the
    mean weights, not the paper's Gaussian moment matching.

    What this adds to `keras.layers.Dense` (which it subclasses: same
    kernel, bias, initializers, regularizers, constraints and `get_config`
    keys): the `rate`, `seed` and `mc_inference` arguments. Keras and
    tensorflow-addons have no DropConnect layer. With `mc_inference=True`
    (or through `kerascnn.layers.mc_predict`) the weights are also dropped
    at inference, for Monte-Carlo DropConnect uncertainty estimates.

    Args:
        units: Positive integer, the output size.
        rate: Float in [0, 1), the probability of dropping a kernel entry.
            Defaults to `0.5`.
        seed: Optional integer >= 0 for reproducible masks.
        mc_inference: Boolean, whether to drop weights at inference too.
            Defaults to `False`.
        **kwargs: Every other `keras.layers.Dense` argument (`activation`,
            `use_bias`, `kernel_initializer`, `kernel_regularizer`,
            `kernel_constraint`, `name`, ...).

    Call arguments:
        inputs: Tensor of rank >= 2.
        training: Boolean, whether the layer is in training mode.

    Returns:
        The `(..., units)` output of `activation(inputs @ kernel + bias)`.

    Reference:
        - [Wan et al., 2013](https://proceedings.mlr.press/v28/wan13.html)
    """

    def __init__(self, units, rate=0.5, seed=None, mc_inference=False,
                 **kwargs):
        units = _validation.check_positive_int("units", units)
        rate, seed, mc_inference = _check_dropconnect_args(rate, seed,
                                                           mc_inference)
        super().__init__(units, **kwargs)
        self._init_dropconnect(rate, seed, mc_inference)

    def call(self, inputs, training=None):
        if not self._dropping(training):
            return super().call(inputs, training=training)
        x = ops.matmul(inputs, self._dropped_kernel())
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self):
        return {**super().get_config(), **self._dropconnect_config()}


@keras.saving.register_keras_serializable(package="kerascnn")
class DropConnectConv2D(_DropConnectMixin, keras.layers.Conv2D):
    """2-D convolution with DropConnect on its kernel (Wan et al., 2013).

    At training every kernel entry (one weight of one filter) is dropped with
    probability `rate` and the kept entries are divided by `1 - rate`, so the
    expected pre-activation equals the full-kernel one; at inference the
    full kernel is used and the layer is exactly `keras.layers.Conv2D`. The
    bias is never dropped. One kernel mask is drawn per call (per training
    step) and shared by the batch and by all positions the filter slides
    over.

    What this adds to `keras.layers.Conv2D` (which it subclasses: same
    kernel, bias, initializers, regularizers, constraints, `data_format` and
    `get_config` keys): the `rate`, `seed` and `mc_inference` arguments.
    Keras and tensorflow-addons have no DropConnect layer.

    Args:
        filters: Positive integer, the number of output channels.
        kernel_size: Integer or pair of integers, the filter size.
        rate: Float in [0, 1), the probability of dropping a kernel entry.
            Defaults to `0.5`.
        seed: Optional integer >= 0 for reproducible masks.
        mc_inference: Boolean, whether to drop weights at inference too.
            Defaults to `False`.
        **kwargs: Every other `keras.layers.Conv2D` argument (`strides`,
            `padding`, `activation`, `kernel_constraint`, ...).

    Call arguments:
        inputs: 4-D tensor.
        training: Boolean, whether the layer is in training mode.

    Returns:
        The 4-D convolution output, as `keras.layers.Conv2D`.

    Reference:
        - [Wan et al., 2013](https://proceedings.mlr.press/v28/wan13.html)
    """

    def __init__(self, filters, kernel_size, rate=0.5, seed=None,
                 mc_inference=False, **kwargs):
        filters = _validation.check_positive_int("filters", filters)
        rate, seed, mc_inference = _check_dropconnect_args(rate, seed,
                                                           mc_inference)
        super().__init__(filters, kernel_size, **kwargs)
        self._init_dropconnect(rate, seed, mc_inference)

    def call(self, inputs, training=None):
        if not self._dropping(training):
            return super().call(inputs)
        outputs = self.convolution_op(inputs, self._dropped_kernel())
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, bias_shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), **self._dropconnect_config()}
