"""Data augmentation presets built from Keras preprocessing layers."""

import keras

from kerascnn import _validation

# Each preset: option -> value. An option set to 0 or None is left out.
_PRESETS = {
    # Handwritten digits: small shifts, rotations and zooms. Never flips: a
    # mirrored 2, 3, 4, 5, 7 or 9 is no longer that digit.
    "digits": {"flip": None, "rotation": 0.03, "translation": 0.1,
               "zoom": 0.1, "contrast": 0.0, "brightness": 0.0,
               "fill_mode": "constant"},
    # Photographs: horizontal flips, random crops and scales (translation +
    # zoom keep the image size), small rotations, contrast and brightness.
    "natural": {"flip": "horizontal", "rotation": 0.05, "translation": 0.1,
                "zoom": 0.15, "contrast": 0.2, "brightness": 0.2,
                "fill_mode": "reflect"},
    "none": {"flip": None, "rotation": 0.0, "translation": 0.0, "zoom": 0.0,
             "contrast": 0.0, "brightness": 0.0, "fill_mode": "constant"},
}

_FLIPS = ("horizontal", "vertical", "horizontal_and_vertical")
_FILL_MODES = ("constant", "reflect", "wrap", "nearest")
_OVERRIDES = ("flip", "rotation", "translation", "zoom", "contrast",
              "brightness", "fill_mode", "value_range")


@keras.saving.register_keras_serializable(package="kerascnn")
class Augmentation(keras.Sequential):
    """A `keras.Sequential` of augmentation layers that is off unless training.

    Keras's random preprocessing layers default to `training=True` when no
    `training` value reaches them, which is what happens in the `serve`
    endpoint written by `model.export()`: a plain `keras.Sequential` of them
    keeps augmenting in the exported SavedModel, so served predictions are
    random and differ from `model.predict`. This subclass defaults
    `training` to `False` (and treats `None` as `False`), so it augments only
    in `fit` (or when called with `training=True`) and is the identity in
    `predict`, `evaluate` and every exported endpoint. Built by
    `augmentation`; saved and loaded as `kerascnn>Augmentation`.
    """

    def call(self, inputs, training=False, mask=None, **kwargs):
        return super().call(inputs, training=bool(training), mask=mask,
                            **kwargs)


def list_augmentation_presets():
    """Names of the augmentation presets, with their settings.

    Returns:
        Dict `{preset: {option: value}}` (a copy).
    """
    return {name: dict(options) for name, options in _PRESETS.items()}


def _check_value_range(value):
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(_validation._is_number(v) for v in value)
            or not value[0] < value[1]):
        _validation.fail("value_range", "a (low, high) pair with low < high",
                         value)
    return (float(value[0]), float(value[1]))


def augmentation(preset="digits", seed=None, name=None, **overrides):
    """Returns an `Augmentation` (a `keras.Sequential`) of random layers.

    Only Keras's own preprocessing layers are used (`RandomFlip`,
    `RandomRotation`, `RandomTranslation`, `RandomZoom`, `RandomContrast`,
    `RandomBrightness`), so the block is saved with the model and runs on
    the accelerator; like them it transforms images only when called with
    `training=True` and is the identity at inference, in `evaluate`,
    `predict` and, unlike a plain `keras.Sequential` of those layers, in the
    SavedModel written by `model.export()` (see `Augmentation`). It also
    adds presets that follow the lecture's "get creative for your problem"
    advice with safe defaults (digits are never flipped), one `seed` that
    seeds every layer differently, and validated overrides.

    Presets (see `list_augmentation_presets`):
        `"digits"`: rotation ±0.03 turn (about ±11°), translation ±10%, zoom
        ±10%, black (constant) fill, no flip. `"natural"`: horizontal flip,
        rotation ±0.05 turn, translation ±10% and zoom ±15% (random crops and
        scales without changing the size), contrast ±20%, brightness ±20%,
        reflect fill. `"none"`: the identity.

    Place it right after the `keras.Input`, on raw pixels: the contrast and
    brightness layers assume `value_range`, by default `(0, 255)`.

    Args:
        preset: `"digits"`, `"natural"` or `"none"`. Defaults to `"digits"`.
        seed: Non-negative integer or `None`; layer `i` gets `seed + i`.
            Defaults to `None`.
        name: Name of the Sequential. Defaults to `"augmentation_<preset>"`.
        **overrides: Change one preset setting: `flip` (`None`,
            `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"`; not
            allowed for `"digits"`), `rotation` (fraction of a full turn),
            `translation`, `zoom`, `contrast`, `brightness` (fractions in
            `[0, 1)`; `0` leaves the layer out), `fill_mode`
            (`"constant"`, `"reflect"`, `"wrap"`, `"nearest"`),
            `value_range` (pixel range, default `(0, 255)`).

    Returns:
        An `Augmentation`, a `keras.Sequential` subclass (holding a single
        `Identity` layer when nothing is enabled).
    """
    preset = _validation.check_option("preset", preset, tuple(_PRESETS))
    if seed is not None:
        seed = _validation.check_non_negative_int("seed", seed)
    if name is None:
        name = f"augmentation_{preset}"
    name = _validation.check_string("name", name)
    for key in overrides:
        if key not in _OVERRIDES:
            _validation.fail("overrides", "keyword arguments among "
                             + ", ".join(_OVERRIDES), key)
    options = dict(_PRESETS[preset], value_range=(0, 255))
    options.update(overrides)
    flip = options["flip"]
    if flip is not None:
        flip = _validation.check_option("flip", flip, _FLIPS)
        if preset == "digits":
            raise _validation.ArgumentError(
                "Argument `flip` must be None for preset 'digits' (a mirrored "
                "digit is a different symbol or no digit). Received: "
                f"flip={flip!r}")
    rotation = _validation.check_float("rotation", options["rotation"], 0.0,
                                       0.5)
    fractions = {key: _validation.check_float(key, options[key], 0.0, 1.0,
                                              max_open=True)
                 for key in ("translation", "zoom", "contrast", "brightness")}
    fill_mode = _validation.check_option("fill_mode", options["fill_mode"],
                                         _FILL_MODES)
    value_range = _check_value_range(options["value_range"])

    counter = iter(range(1000))

    def _seed():
        index = next(counter)
        return None if seed is None else seed + index

    layers = []
    if flip is not None:
        layers.append(keras.layers.RandomFlip(flip, seed=_seed(), name="flip"))
    if rotation:
        layers.append(keras.layers.RandomRotation(
            rotation, fill_mode=fill_mode, seed=_seed(), name="rotation"))
    if fractions["translation"]:
        t = fractions["translation"]
        layers.append(keras.layers.RandomTranslation(
            t, t, fill_mode=fill_mode, seed=_seed(), name="translation"))
    if fractions["zoom"]:
        layers.append(keras.layers.RandomZoom(
            fractions["zoom"], fill_mode=fill_mode, seed=_seed(),
            name="zoom"))
    if fractions["contrast"]:
        layers.append(keras.layers.RandomContrast(
            fractions["contrast"], value_range=value_range, seed=_seed(),
            name="contrast"))
    if fractions["brightness"]:
        layers.append(keras.layers.RandomBrightness(
            fractions["brightness"], value_range=value_range, seed=_seed(),
            name="brightness"))
    if not layers:
        layers.append(keras.layers.Identity(name="identity"))
    return Augmentation(layers, name=name)
