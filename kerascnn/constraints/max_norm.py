"""Max-norm weight constraint with per-unit axes inferred from the kernel."""

import keras
from keras import ops

from kerascnn import _validation


def _check_axis(axis):
    if isinstance(axis, str) and axis.lower() == "auto":
        return "auto"
    if _validation._is_int(axis):
        return int(axis)
    if (isinstance(axis, (tuple, list)) and axis
            and all(_validation._is_int(a) for a in axis)
            and len(set(axis)) == len(axis)):
        return tuple(int(a) for a in axis)
    _validation.fail("axis", '"auto", an integer or a tuple of distinct '
                     "integers", axis)


def _is_depthwise(w):
    """Whether `w` is a Keras depthwise kernel (DepthwiseConv2D/SeparableConv).

    A constraint only sees the weight: the optimizer passes the Keras
    variable, whose path (`layer_name/kernel`) gives the layer's default
    name away.
    """
    path = str(getattr(w, "path", "") or getattr(w, "name", "") or "")
    parts = path.split("/")
    if parts[-1].startswith("depthwise_kernel"):
        return True
    return len(parts) >= 2 and parts[-2].startswith("depthwise_conv")


def auto_axes(w):
    """The axes holding the incoming weights of one unit of kernel `w`.

    Dense `(in, out)` -> `(0,)`; Conv1D/2D/3D `(..., in, out)` -> every axis
    but the last; a depthwise kernel `(kh, kw, in, multiplier)` (recognised
    by its Keras variable path) -> `(0, 1)`.
    """
    rank = len(w.shape)
    if rank < 2 or rank > 5:
        raise _validation.ArgumentError(
            'MaxNorm(axis="auto") applies to kernels of rank 2 (Dense) to 5 '
            "(Conv3D); pass an explicit `axis` for other weights. Received: "
            f"weight {getattr(w, 'path', '')!s} of shape {tuple(w.shape)}"
        )
    if rank == 4 and _is_depthwise(w):
        return (0, 1)
    return tuple(range(rank - 1))


@keras.saving.register_keras_serializable(package="kerascnn")
class MaxNorm(keras.constraints.MaxNorm):
    """Caps the L2 norm of every unit's incoming weight vector at `max_value`.

    After every optimizer update the incoming weights `w` of each output
    unit (a column of a Dense kernel, a whole `kh x kw x in` filter of a
    convolution) are rescaled to `w * min(1, c / ||w||)`; vectors shorter
    than `c` are left (up to Keras' `epsilon` guard) as they are. Combined with
    dropout and a large learning rate this keeps the weights from blowing up
    (Srivastava et al., 2014, use `c` of 3 to 4).

    What this adds to `keras.constraints.MaxNorm` (which it subclasses and
    whose formula it keeps): `axis="auto"`, which picks the per-unit axes
    from the kernel. Keras' `MaxNorm` defaults to `axis=0`, right for Dense
    kernels but wrong for convolution kernels `(kh, kw, in, out)`, where it
    constrains each column of `kh` weights of a filter instead of the
    filter; and checked arguments. The defaults are Keras' own
    (`max_value=2.0`, `axis=0`), so that this class and Keras' behave alike
    when both are imported: pass `axis="auto"` for the per-unit axes.

    With `axis="auto"`: a Dense kernel `(in, out)` -> axis 0; Conv1D/2D/3D
    kernels `(..., in, out)` -> all axes but the last; a DepthwiseConv2D or
    SeparableConv depthwise kernel `(kh, kw, in, multiplier)` -> axes
    `(0, 1)`, one norm per (input channel, multiplier) unit. Depthwise
    kernels are recognised by their Keras variable path (the default layer
    name `depthwise_conv2d*` or the weight name `depthwise_kernel`); for a
    renamed DepthwiseConv2D layer pass `axis=(0, 1)`. Weights of rank 1
    (biases) need an explicit axis.

    Args:
        max_value: Float > 0, the maximum norm `c`. Defaults to `2.0` (as
            Keras).
        axis: `"auto"`, an integer or a tuple of integers: the axes summed
            over for each norm. Defaults to `0` (as Keras; right for Dense
            kernels only).

    Example:

    >>> layer = keras.layers.Conv2D(
    ...     32, 3, kernel_constraint=MaxNorm(3.0, axis="auto"))

    Reference:
        - [Srivastava et al., 2014](https://jmlr.org/papers/v15/srivastava14a.html)
    """

    def __init__(self, max_value=2.0, axis=0):
        max_value = _validation.check_positive_float("max_value", max_value)
        axis = _check_axis(axis)
        super().__init__(max_value=max_value, axis=axis)

    def __call__(self, w):
        axis = auto_axes(w) if self.axis == "auto" else self.axis
        w = ops.convert_to_tensor(w)
        norms = ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))
        desired = ops.clip(norms, 0, self.max_value)
        return ops.cast(w, norms.dtype) * (
            desired / (keras.backend.epsilon() + norms))

    def get_config(self):
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return {"max_value": self.max_value, "axis": axis}
