"""Discriminative (per-layer) learning rates for Keras 3 optimizers.

Keras 3 has one learning rate per optimizer. These optimizers multiply it,
for each variable, by the multiplier of the layer that owns the variable
(looked up by the first component of `variable.path`, the layer name), so
that lower blocks of a fine-tuned backbone learn more slowly than the top
ones. Multiplying the gradient instead would not work for Adam, whose
update does not depend on the gradient's scale.
"""

import keras

from kerascnn import _compat, _validation


class _DiscriminativeMixin:
    def __init__(self, *args, lr_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = _check_multipliers(lr_multipliers)
        self._variable_multipliers = []

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._variable_multipliers = [
            self.multiplier_of(variable) for variable in variables]

    def multiplier_of(self, variable):
        """The learning-rate multiplier of a variable (1 if not listed)."""
        path = getattr(variable, "path", None) or getattr(
            variable, "name", "")
        return self.lr_multipliers.get(path.split("/")[0], 1.0)

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._variable_multipliers[
            _compat.variable_index(self, variable)]
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(),
                "lr_multipliers": dict(self.lr_multipliers)}


def _check_multipliers(value):
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and _validation._is_number(v) and v >= 0
            for k, v in value.items()):
        _validation.fail("lr_multipliers",
                         "a dict of layer name -> number >= 0", value)
    return {k: float(v) for k, v in value.items()}


_DOC = """{base} with a learning-rate multiplier per layer.

    What it adds to Keras: `keras.optimizers.{base}` has one learning rate;
    this one scales it per layer (discriminative learning rates for
    fine-tuning). It saves with the model.

    Args:
        lr_multipliers: Dict layer name -> multiplier >= 0 (1 for layers not
            listed, 0 freezes a layer's variables).
        **kwargs: The arguments of `keras.optimizers.{base}`.
    """


@keras.saving.register_keras_serializable(package="kerascnn")
class DiscriminativeAdam(_DiscriminativeMixin, keras.optimizers.Adam):
    __doc__ = _DOC.format(base="Adam")


@keras.saving.register_keras_serializable(package="kerascnn")
class DiscriminativeAdamW(_DiscriminativeMixin, keras.optimizers.AdamW):
    __doc__ = _DOC.format(base="AdamW")


@keras.saving.register_keras_serializable(package="kerascnn")
class DiscriminativeSGD(_DiscriminativeMixin, keras.optimizers.SGD):
    __doc__ = _DOC.format(base="SGD")


@keras.saving.register_keras_serializable(package="kerascnn")
class DiscriminativeRMSprop(_DiscriminativeMixin, keras.optimizers.RMSprop):
    __doc__ = _DOC.format(base="RMSprop")


_BY_BASE = {
    "adam": DiscriminativeAdam,
    "adamw": DiscriminativeAdamW,
    "sgd": DiscriminativeSGD,
    "rmsprop": DiscriminativeRMSprop,
}


def discriminative_optimizer(optimizer, lr_multipliers):
    """The discriminative version of an optimizer.

    Args:
        optimizer: `"adam"`, `"adamw"`, `"sgd"`, `"rmsprop"` or an unbuilt
            instance of one of those Keras optimizers (its configuration,
            learning rate included, is kept).
        lr_multipliers: Dict layer name -> multiplier (see
            `block_lr_multipliers`).

    Returns:
        A `Discriminative*` optimizer.
    """
    if isinstance(optimizer, str):
        key = _validation.check_option("optimizer", optimizer,
                                       tuple(_BY_BASE))
        return _BY_BASE[key](lr_multipliers=lr_multipliers)
    for key, cls in _BY_BASE.items():
        base = cls.__mro__[2]
        if type(optimizer) in (base, cls):
            config = optimizer.get_config()
            config.pop("lr_multipliers", None)
            config["lr_multipliers"] = lr_multipliers
            return cls.from_config(config)
    _validation.fail("optimizer", "one of 'adam', 'adamw', 'sgd', 'rmsprop' "
                     "or an instance of those Keras optimizers", optimizer)
