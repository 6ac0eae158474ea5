"""The registry of `keras.applications` backbones, and `get_backbone`."""

import collections
import fnmatch
import os
import warnings

import keras

from kerascnn import _validation
from kerascnn.transfer import blocks as blocks_lib
from kerascnn.transfer.preprocessing import BackbonePreprocessing

BackboneSpec = collections.namedtuple(
    "BackboneSpec",
    ["name", "constructor", "preprocessing", "default_size", "min_size",
     "family"])
BackboneSpec.__doc__ = """What the registry knows of one backbone.

Fields:
    name: Registry name, lowercase (`"resnet50"`).
    constructor: Name of the `keras.applications` function (`"ResNet50"`).
    preprocessing: `BackbonePreprocessing` mode of its `preprocess_input`.
    default_size: Input size its ImageNet weights were trained at.
    min_size: Smallest input height and width it accepts.
    family: Family name (`"resnet"`).
"""

_FAMILIES = [
    # family, preprocessing mode, min size, [(constructor, default size)]
    ("vgg", "caffe", 32, [("VGG16", 224), ("VGG19", 224)]),
    ("resnet", "caffe", 32,
     [("ResNet50", 224), ("ResNet101", 224), ("ResNet152", 224)]),
    ("resnet_v2", "tf", 32,
     [("ResNet50V2", 224), ("ResNet101V2", 224), ("ResNet152V2", 224)]),
    ("mobilenet", "tf", 32, [("MobileNet", 224)]),
    ("mobilenet_v2", "tf", 32, [("MobileNetV2", 224)]),
    # MobileNetV3, EfficientNet(V2) and ConvNeXt rescale inside the model.
    ("mobilenet_v3", "none", 32,
     [("MobileNetV3Small", 224), ("MobileNetV3Large", 224)]),
    ("efficientnet", "none", 32,
     [(f"EfficientNetB{i}", size) for i, size in enumerate(
         (224, 240, 260, 300, 380, 456, 528, 600))]),
    ("efficientnet_v2", "none", 32,
     [("EfficientNetV2B0", 224), ("EfficientNetV2B1", 240),
      ("EfficientNetV2B2", 260), ("EfficientNetV2B3", 300),
      ("EfficientNetV2S", 384), ("EfficientNetV2M", 480),
      ("EfficientNetV2L", 480)]),
    ("densenet", "torch", 32,
     [("DenseNet121", 224), ("DenseNet169", 224), ("DenseNet201", 224)]),
    ("inception_v3", "tf", 75, [("InceptionV3", 299)]),
    ("inception_resnet_v2", "tf", 75, [("InceptionResNetV2", 299)]),
    ("xception", "tf", 71, [("Xception", 299)]),
    ("nasnet", "tf", 32, [("NASNetMobile", 224), ("NASNetLarge", 331)]),
    ("convnext", "none", 32,
     [(f"ConvNeXt{size}", 224)
      for size in ("Tiny", "Small", "Base", "Large", "XLarge")]),
]

BACKBONES = {
    constructor.lower(): BackboneSpec(constructor.lower(), constructor, mode,
                                      default, min_size, family)
    for family, mode, min_size, members in _FAMILIES
    for constructor, default in members
}

# NASNet needs a fixed default size for "imagenet" weights only.
_FIXED_SIZE_FOR_IMAGENET = {"nasnetmobile": 224, "nasnetlarge": 331}


def list_backbones(pattern=None):
    """Names of the registered backbones, sorted, optionally filtered.

    Args:
        pattern: Optional `fnmatch` pattern, case-insensitive
            (`"efficientnet*"`). Defaults to `None` (all names).

    Returns:
        A sorted list of registry names.
    """
    names = sorted(BACKBONES)
    if pattern is None:
        return names
    pattern = _validation.check_string("pattern", pattern).lower()
    return [name for name in names if fnmatch.fnmatch(name, pattern)]


def get_spec(name):
    """The `BackboneSpec` of a registry name (case-insensitive)."""
    if not isinstance(name, str) or name.lower() not in BACKBONES:
        _validation.fail("name", "one of " + ", ".join(list_backbones()),
                         name)
    return BACKBONES[name.lower()]


class Backbone:
    """A feature extractor that takes raw pixels, with its blocks.

    Attributes:
        name: Registry name, or the source model's name.
        spec: The `BackboneSpec`, or `None` for a user's model.
        base: The Keras model without preprocessing (a `keras.applications`
            model with `include_top=False`, or the source model cut at its
            feature layer). Its layers are what the blocks name.
        preprocessing: The `BackbonePreprocessing` layer placed before it.
        model: raw pixels -> preprocessing -> base, a functional model.
        blocks: Tuple of `Block`, lowest first.
        input_shape: `(height, width, channels)` of the raw input.
        notes: List of sentences about conversions made (grayscale to RGB).
    """

    def __init__(self, name, base, preprocessing, input_shape, blocks,
                 spec=None, notes=()):
        self.name = name
        self.spec = spec
        self.base = base
        self.preprocessing = preprocessing
        self.input_shape = tuple(input_shape)
        self.blocks = tuple(blocks)
        self.notes = list(notes)
        inputs = keras.Input(self.input_shape, name="pixels")
        features = base(preprocessing(inputs))
        self.model = keras.Model(inputs, features, name=f"{name}_features")

    @property
    def has_batchnorm(self):
        """Whether the base holds BatchNormalization layers."""
        return bool(blocks_lib.batchnorm_layers(self.base))

    def block(self, key):
        """A block by index (negative counts from the top) or by name."""
        if isinstance(key, str):
            for block in self.blocks:
                if block.name == key:
                    return block
        elif _validation._is_int(key) and -len(self.blocks) <= key < len(
                self.blocks):
            return self.blocks[key]
        _validation.fail(
            "block", "a block index or one of "
            + ", ".join(b.name for b in self.blocks), key)

    def stage_model(self, keys=None):
        """Raw pixels -> globally average-pooled outputs of some blocks.

        Args:
            keys: Block indices or names. Defaults to all blocks.

        Returns:
            A functional model with one output per block (a list if more
            than one); each output is `(batch, channels)`.
        """
        chosen = self.blocks if keys is None else [self.block(k)
                                                   for k in keys]
        tapped = keras.Model(
            self.base.inputs,
            [self.base.get_layer(b.output).output for b in chosen])
        inputs = keras.Input(self.input_shape, name="pixels")
        outputs = tapped(self.preprocessing(inputs))
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        pooled = [_pool(out) for out in outputs]
        return keras.Model(inputs, pooled if len(pooled) > 1 else pooled[0])

    def __repr__(self):
        return (f"Backbone({self.name!r}, input_shape={self.input_shape}, "
                f"blocks={len(self.blocks)})")


def _pool(tensor):
    if len(tensor.shape) == 4:
        return keras.layers.GlobalAveragePooling2D()(tensor)
    if len(tensor.shape) > 2:
        return keras.layers.Flatten()(tensor)
    return tensor


def _check_input_shape(input_shape, min_size, name):
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(_validation._is_int(v) and v > 0
                       for v in input_shape)):
        _validation.fail("input_shape",
                         "a (height, width, channels) tuple of positive "
                         "integers", input_shape)
    height, width, channels = (int(v) for v in input_shape)
    if height < min_size or width < min_size:
        _validation.fail(
            "input_shape",
            f"at least ({min_size}, {min_size}) in height and width for "
            f"backbone {name!r}", tuple(input_shape))
    if channels not in (1, 3):
        _validation.fail("input_shape", "an image shape with 1 or 3 channels",
                         tuple(input_shape))
    return height, width, channels


def _check_weights(weights):
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return _validation.check_existing_path("weights", weights, "file")
    _validation.fail("weights", '"imagenet", None or the path of a weights '
                     "file", weights)


def get_backbone(name, input_shape=None, weights="imagenet", blocks=None,
                 feature_layer=None):
    """Builds a backbone that takes raw pixels, with its blocks.

    What it adds to `keras.applications`: one call gives the model with its
    own `preprocess_input` inside as a serializable layer (so the transfer
    model saves and exports taking raw 0-255 pixels), checks the input size
    against the architecture's minimum, converts grayscale data to RGB, loads
    a local weights file with a clear error when it does not fit, and names
    the stages so that freezing is said in blocks. A user's own Keras model
    (for example a CNN pretrained on other classes) works the same way.

    Args:
        name: A registry name (see `list_backbones()`), case-insensitive, or
            a Keras functional model to transfer from.
        input_shape: `(height, width, channels)` of the raw images, channels
            1 (grayscale, converted to RGB for an ImageNet backbone, with a
            note) or 3. Defaults to the backbone's default size, RGB; for a
            user's model, its input shape.
        weights: `"imagenet"` (Keras downloads them), `None` (random
            initialisation) or the path of a weights file saved from the same
            architecture. Ignored for a user's model. Defaults to
            `"imagenet"`.
        blocks: Optional list of layer names ending each block, to override
            the derived stage boundaries.
        feature_layer: For a user's model, the name of the layer whose
            output are the features. Defaults to the layer before the
            model's classifier head (its trailing Dense / Dropout /
            Activation layers on flat features), as in the classic Keras
            transfer example.

    Returns:
        A `Backbone`.
    """
    if isinstance(name, keras.Model):
        return _backbone_from_model(name, input_shape, blocks, feature_layer)
    spec = get_spec(name)
    weights = _check_weights(weights)
    if input_shape is None:
        input_shape = (spec.default_size, spec.default_size, 3)
    height, width, channels = _check_input_shape(input_shape, spec.min_size,
                                                 spec.name)
    notes = []
    if channels == 1:
        notes.append(
            f"The images have 1 channel (grayscale) and {spec.name} expects "
            "3 (RGB): the preprocessing layer repeats the channel 3 times.")
        warnings.warn(notes[-1], UserWarning, stacklevel=2)
    constructor = getattr(keras.applications, spec.constructor)
    kwargs = {"include_top": False, "input_shape": (height, width, 3)}
    if weights == "imagenet":
        fixed = _FIXED_SIZE_FOR_IMAGENET.get(spec.name)
        if fixed and (height, width) != (fixed, fixed):
            _validation.fail(
                "input_shape", f"({fixed}, {fixed}, channels) for {spec.name} "
                'with weights="imagenet"', tuple(input_shape))
        base = _with_imagenet_weights(constructor, spec.name, kwargs)
    else:
        base = constructor(weights=None, **kwargs)
        if weights is not None:
            try:
                base.load_weights(weights)
            except Exception as error:  # Keras raises several types here.
                first = str(error).splitlines()[0][:200] if str(error) else ""
                raise _validation.ArgumentError(
                    "Argument `weights` must be a weights file of the "
                    f"{spec.name} architecture (include_top=False). "
                    f"Received: weights={weights!r} ({type(error).__name__}: "
                    f"{first})"
                ) from None
    preprocessing = BackbonePreprocessing(
        spec.preprocessing, grayscale_to_rgb=channels == 1,
        name="backbone_preprocessing")
    return Backbone(spec.name, base, preprocessing, (height, width, channels),
                    blocks_lib.find_blocks(base, blocks), spec, notes)


def _is_download_failure(error):
    import urllib.error

    text = str(error)
    return (isinstance(error, (urllib.error.URLError, ConnectionError,
                               TimeoutError))
            or "URL fetch failure" in text
            or "Temporary failure in name resolution" in text)


def _with_imagenet_weights(constructor, name, kwargs):
    """The `keras.applications` model with ImageNet weights, or one line.

    Keras downloads the weights on first use; without a network that ends
    in a long "URL fetch failure" traceback. This says what failed and the
    two ways on: a local weights file or random initialisation.
    """
    try:
        return constructor(weights="imagenet", **kwargs)
    except Exception as error:  # Keras raises a bare Exception here.
        if not _is_download_failure(error):
            raise
        first = str(error).splitlines()[0][:200] if str(error) else ""
        raise _validation.ArgumentError(
            f"Argument `weights` must name weights that can be loaded: the "
            f"ImageNet weights of {name} could not be downloaded (no "
            f"network?). Pass a local weights file (weights=PATH, CLI "
            f"--weights FILE) or random initialisation (weights=None, CLI "
            f"--weights none). Received: weights='imagenet' ({first})"
        ) from None


_HEAD_TYPES = (keras.layers.Dense, keras.layers.Dropout,
               keras.layers.Activation, keras.layers.Softmax,
               keras.layers.ReLU, keras.layers.BatchNormalization)


def _default_feature_layer(model):
    """The last layer before the model's classifier head.

    The head is the trailing run of Dense / Dropout / Activation layers on
    flat features (the classic Keras transfer example retrains exactly
    these); the base keeps the convolutions and the Flatten or pooling.
    """
    layers = [layer for layer in model.layers
              if not isinstance(layer, keras.layers.InputLayer)]
    index = len(layers)
    while index > 0 and isinstance(layers[index - 1], _HEAD_TYPES) and len(
            layers[index - 1].output.shape) == 2:
        index -= 1
    if index == len(layers):
        return layers[-1].name if layers else None
    if index == 0:
        _validation.fail("name", "a model with layers before its "
                         "classifier head", model)
    return layers[index - 1].name


def _backbone_from_model(model, input_shape, blocks, feature_layer):
    if not isinstance(getattr(model, "inputs", None), list) or len(
            model.inputs) != 1:
        _validation.fail("name", "a registry name or a built Keras model "
                         "with one input", model)
    source_shape = tuple(model.inputs[0].shape[1:])
    if input_shape is not None and tuple(input_shape) != source_shape:
        _validation.fail("input_shape",
                         f"the source model's input shape {source_shape}",
                         input_shape)
    if len(source_shape) != 3 or None in source_shape:
        _validation.fail("name", "a model whose input is a fixed "
                         "(height, width, channels) image", model)
    # A copy, so that fine-tuning never changes the user's source model.
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    if feature_layer is None:
        feature_layer = _default_feature_layer(clone)
    names = [layer.name for layer in clone.layers]
    if feature_layer not in names:
        _validation.fail("feature_layer", "the name of a layer of the model",
                         feature_layer)
    base = keras.Model(clone.inputs, clone.get_layer(feature_layer).output,
                       name=f"{model.name}_base")
    preprocessing = BackbonePreprocessing("none",
                                          name="backbone_preprocessing")
    return Backbone(model.name, base, preprocessing, source_shape,
                    blocks_lib.find_blocks(base, blocks))
