"""Convolution arithmetic: the output-volume formula of the lectures.

For an input of width W1, a filter of size F, padding P and stride S:

    W2 = (W1 - F + 2P) / S + 1

must be a positive integer, or the filters do not tile the input.
Keras computes shapes too, but silently floors a non-integer W2 and reports
a collapsed stack as a negative-dimension error deep inside `build`; this
module names the layer and the numbers instead.
"""

from kerascnn import _validation

PADDING_MODES = ("same", "valid")


def resolve_padding(padding, filter_size, name="padding"):
    """Returns the per-side padding P for `padding` and `filter_size`.

    `"same"` pads so that a stride-1 layer keeps the size ((F - 1) / 2 for odd
    F), `"valid"` is 0, an integer is taken as P.
    """
    if isinstance(padding, str):
        mode = _validation.check_option(name, padding, PADDING_MODES)
        return (filter_size - 1) / 2 if mode == "same" else 0
    return _validation.check_non_negative_int(name, padding)


def conv_output_size(size, filter_size, stride=1, padding="valid", strict=True,
                     name=None):
    """Output size of a convolution or pooling window along one axis.

    Args:
        size: Integer >= 1, the input size W1.
        filter_size: Integer >= 1, the window size F.
        stride: Integer >= 1, the stride S. Defaults to `1`.
        padding: `"same"`, `"valid"` or an integer P >= 0 (zeros added on
            each side). Defaults to `"valid"`.
        strict: Boolean. If `True` (the lecture's rule), `(W1 - F + 2P)` must
            be divisible by S; if `False`, the size is floored as Keras does.
            `"same"` padding is never strict: Keras pads to `ceil(W1 / S)`.
            Defaults to `True`.
        name: Optional name of the layer, used in the error message.

    Returns:
        The output size W2, an integer >= 1.

    Raises:
        ValueError: if an argument is invalid, or W2 is not a positive
            integer.

    Example:

    >>> conv_output_size(32, 5, stride=1, padding=2)
    32
    >>> conv_output_size(227, 11, stride=4, padding=0)
    55
    """
    size = _validation.check_positive_int("size", size)
    filter_size = _validation.check_positive_int("filter_size", filter_size)
    stride = _validation.check_positive_int("stride", stride)
    where = f" at layer `{name}`" if name else ""
    if isinstance(padding, str) and padding.lower() == "same":
        return -(-size // stride)
    pad = resolve_padding(padding, filter_size)
    span = size - filter_size + 2 * pad
    if span < 0:
        raise _validation.ArgumentError(
            f"The output size{where} is not positive: (W1 - F + 2P) / S + 1 = "
            f"({size} - {filter_size} + 2*{pad}) / {stride} + 1 = "
            f"{span / stride + 1:g}. Received: size={size}, "
            f"filter_size={filter_size}, stride={stride}, padding={padding!r}"
        )
    if strict and span % stride:
        raise _validation.ArgumentError(
            f"The output size{where} is not an integer: (W1 - F + 2P) / S + 1 "
            f"= ({size} - {filter_size} + 2*{pad}) / {stride} + 1 = "
            f"{span / stride + 1:g}. Received: size={size}, "
            f"filter_size={filter_size}, stride={stride}, padding={padding!r}"
        )
    return span // stride + 1
