"""Group normalization with the tensorflow-addons signature (Wu & He, 2018)."""

import keras

from kerascnn import _validation

_MAX_AUTO_GROUPS = 32


def _check_groups(groups):
    """Accepts a positive integer, -1 (instance norm) or "auto"."""
    if isinstance(groups, str):
        if groups.lower() == "auto":
            return "auto"
    elif _validation._is_int(groups) and (groups >= 1 or groups == -1):
        return int(groups)
    _validation.fail(
        "groups",
        'a positive integer, -1 (instance normalization) or "auto"',
        groups,
    )


def auto_groups(channels, max_groups=_MAX_AUTO_GROUPS):
    """The largest divisor of `channels` that is <= `max_groups`."""
    for candidate in range(min(channels, max_groups), 0, -1):
        if channels % candidate == 0:
            return candidate
    return 1


@keras.saving.register_keras_serializable(package="kerascnn")
class GroupNormalization(keras.layers.GroupNormalization):
    """Group normalization layer (Wu & He, 2018), a drop-in for tfa's.

    The channels are split into `groups` groups; every sample is normalized
    with the mean and variance of each group (over the spatial axes and the
    channels of the group), then scaled by `gamma` and shifted by `beta` per
    channel. The statistics never mix samples, so the output of a sample does
    not depend on the batch it is in: GroupNorm works with the batch sizes of
    1-8 where `BatchNormalization` degrades.

    `groups=1` normalizes all channels together (like `LayerNormalization`
    over the spatial and channel axes); `groups=-1` (or the channel count)
    normalizes each channel alone (instance normalization).

    What this adds to `keras.layers.GroupNormalization` (which it subclasses
    and whose numbers it keeps): the exact signature and defaults of
    `tfa.layers.GroupNormalization`, so migrating from tensorflow-addons is an
    import change; `groups="auto"` (the largest divisor of the channel count
    that is <= 32, the paper's default); errors that name the argument, the
    channel count and the input shape; `get_config` that keeps `-1`/`"auto"`
    as given (Keras replaces `-1` by the channel count); and registration
    under the `kerascnn` package for `.keras` files.

    Args:
        groups: Integer >= 1 dividing the channel count, `-1` for instance
            normalization, or `"auto"`. Defaults to `32`.
        axis: Integer, the channel axis (not the batch axis). Defaults to
            `-1`.
        epsilon: Float > 0 added to the variance. Defaults to `1e-3`.
        center: Boolean, whether to add the learned offset `beta`.
            Defaults to `True`.
        scale: Boolean, whether to multiply by the learned `gamma`.
            Defaults to `True`.
        beta_initializer: Initializer for `beta`. Defaults to `"zeros"`.
        gamma_initializer: Initializer for `gamma`. Defaults to `"ones"`.
        beta_regularizer: Optional regularizer for `beta`.
        gamma_regularizer: Optional regularizer for `gamma`.
        beta_constraint: Optional constraint for `beta`.
        gamma_constraint: Optional constraint for `gamma`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Tensor of rank >= 2 whose `axis` size is known.

    Returns:
        A tensor of the same shape and dtype as `inputs`.

    Raises:
        ArgumentError: (a `ValueError`) for a bad argument in the
            constructor, or in `build` when `groups` does not divide the
            channel count, the channel axis has no size, or `axis` is the
            batch axis.

    Example:

    >>> layer = GroupNormalization(groups="auto")
    >>> layer(np.ones((2, 8, 8, 48), "float32")).shape  # 24 groups of 2
    TensorShape([2, 8, 8, 48])

    Reference:
        - [Wu & He, 2018](https://arxiv.org/abs/1803.08494)
    """

    def __init__(
        self,
        groups=32,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        groups = _check_groups(groups)
        axis = _validation.check_int("axis", axis)
        if axis == 0:
            _validation.fail("axis", "a channel axis, not the batch axis 0",
                             axis)
        epsilon = _validation.check_positive_float("epsilon", epsilon)
        center = _validation.check_bool("center", center)
        scale = _validation.check_bool("scale", scale)
        super().__init__(
            # Keras only knows integers; the request is resolved in build.
            groups=groups if isinstance(groups, int) else -1,
            axis=axis,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            **kwargs,
        )
        # The argument as given (-1, "auto" or n); `self.groups` becomes the
        # resolved group count once the layer is built.
        self.requested_groups = groups
        self.groups = groups

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        rank = len(input_shape)
        if rank < 2:
            raise _validation.ArgumentError(
                "GroupNormalization needs inputs of rank >= 2 (batch and "
                f"channels). Received: input_shape={input_shape}"
            )
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise _validation.ArgumentError(
                f"Argument `axis` must be a channel axis of the {rank}-D "
                f"input, not the batch axis. Received: axis={self.axis} for "
                f"input_shape={input_shape}"
            )
        channels = input_shape[self.axis]
        if channels is None:
            raise _validation.ArgumentError(
                f"Axis {self.axis} (the channel axis) needs a known size. "
                f"Received: input_shape={input_shape}"
            )
        groups = self._resolve_groups(channels)
        if channels % groups != 0:
            raise _validation.ArgumentError(
                f"Argument `groups` must divide the number of channels "
                f"({channels}, axis {self.axis}). Received: groups={groups} "
                f"for input_shape={input_shape}"
            )
        self.groups = groups
        super().build(input_shape)

    def _resolve_groups(self, channels):
        if self.requested_groups == "auto":
            return auto_groups(channels)
        if self.requested_groups == -1:
            return channels
        return self.requested_groups

    def get_config(self):
        config = super().get_config()
        config["groups"] = self.requested_groups
        return config
